"""Programs in HLO form (PJRT formats "hlo" and "hlo_with_config"), as XlaBuilder frontends such
as PyTorch/XLA send them: converted to StableHLO by jaxlib's own converter, then compiled like
any StableHLO program."""

from __future__ import annotations

from ..compiler import reader_check
from ..compiler.importer import upgrade_deprecated_ops
from ..errors import InvalidArgumentError

# HloModuleProtoWithConfig: field 1 is the HloModuleProto, field 2 the module config.
_HLO_MODULE_FIELD = 1
_LENGTH_DELIMITED = 2


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise InvalidArgumentError("[compile] hlo_with_config: truncated protobuf varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def module_of_config_proto(data: bytes) -> bytes:
    """The serialized HloModuleProto inside a serialized HloModuleProtoWithConfig."""
    position = 0
    found = None
    while position < len(data):
        key, position = _varint(data, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, position = _varint(data, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise InvalidArgumentError("[compile] hlo_with_config: truncated protobuf field")
            if field == _HLO_MODULE_FIELD:
                found = data[position:position + length]
            position += length
        else:
            raise InvalidArgumentError(f"[compile] hlo_with_config: protobuf wire type "
                                       f"{wire_type} is not valid here")
    if position != len(data):
        raise InvalidArgumentError("[compile] hlo_with_config: truncated protobuf field")
    if found is None:
        raise InvalidArgumentError("[compile] hlo_with_config: the proto has no hlo_module")
    return found


def to_stablehlo(code: bytes, with_config: bool) -> bytes:
    """StableHLO bytecode for a serialized HloModuleProto (or HloModuleProtoWithConfig)."""
    from jax._src.lib import _jax

    proto = module_of_config_proto(code) if with_config else code
    try:
        stablehlo = bytes(_jax.mlir.hlo_to_stablehlo(proto))
    except Exception as e:  # jaxlib's parser or converter refused it
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidArgumentError(f"[compile] the 'hlo' program ({len(proto)} bytes) is not "
                                   f"an HloModuleProto jaxlib can convert: {detail}") from e
    reader_check.remember(stablehlo)  # the converter's own writing: no child needed
    return upgrade_deprecated_ops(stablehlo)
