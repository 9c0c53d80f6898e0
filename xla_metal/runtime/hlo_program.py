"""Programs in HLO form (PJRT formats "hlo" and "hlo_with_config"), as XlaBuilder frontends such
as PyTorch/XLA send them: converted to StableHLO by jaxlib's own converter, then compiled like
any StableHLO program."""

from __future__ import annotations

from ..errors import InvalidArgumentError
from ..reader import client as reader
from . import protowire

# HloModuleProtoWithConfig: field 1 is the HloModuleProto, field 2 the module config.
_HLO_MODULE_FIELD = 1


def module_of_config_proto(data: bytes) -> bytes:
    """The serialized HloModuleProto inside a serialized HloModuleProtoWithConfig."""
    found = None
    try:
        for number, wire_type, value in protowire.fields(data):
            if number == _HLO_MODULE_FIELD and wire_type == protowire.LENGTH_DELIMITED:
                assert isinstance(value, bytes)
                found = value
    except protowire.WireError as e:
        raise InvalidArgumentError(f"[compile] hlo_with_config: {e}") from None
    if found is None:
        raise InvalidArgumentError("[compile] hlo_with_config: the proto has no hlo_module")
    return found


def to_stablehlo(code: bytes, with_config: bool) -> bytes:
    """StableHLO bytecode for a serialized HloModuleProto (or HloModuleProtoWithConfig).
    jaxlib's converter aborts or hangs on some corrupt protos, so it runs in the reader
    process (xla_metal/reader), which also upgrades deprecated ops (the converter still emits
    `dot`, for example) and answers with the bytecode."""
    proto = module_of_config_proto(code) if with_config else code
    return reader.convert_hlo(proto)
