"""bridge.py's ctypes structs match bridge.h, field by field (offsets and sizes)."""

from __future__ import annotations

import ctypes as C
import re
import subprocess
from pathlib import Path

from xla_metal import bridge

HEADER = Path(bridge.__file__).parent / "pjrt" / "bridge.h"
STRUCTS = {
    "XmPluginAttributesArgs": bridge.PluginAttributesArgs,
    "XmClientCreateArgs": bridge.ClientCreateArgs,
    "XmReleaseArgs": bridge.ReleaseArgs,
    "XmCompileArgs": bridge.CompileArgs,
    "XmExecuteArgs": bridge.ExecuteArgs,
    "XmFromHostArgs": bridge.FromHostArgs,
    "XmToHostArgs": bridge.ToHostArgs,
    "XmSerializeArgs": bridge.SerializeArgs,
    "XmProgramTextArgs": bridge.ProgramTextArgs,
    "XmMemoryStatsArgs": bridge.MemoryStatsArgs,
    "XmCostAnalysisArgs": bridge.CostAnalysisArgs,
    "XmMemoryAnalysisArgs": bridge.MemoryAnalysisArgs,
    "XmBufferCopyArgs": bridge.BufferCopyArgs,
    "XmBufferPointerArgs": bridge.BufferPointerArgs,
    "XmAwaitExecutionArgs": bridge.AwaitExecutionArgs,
    "XmBridge": bridge.Bridge,
}


def _c_layout(tmp_path: Path) -> dict[str, tuple[int, dict[str, int]]]:
    lines = ['#include <stdio.h>', '#include <stddef.h>', f'#include "{HEADER}"',
             "int main(void) {"]
    for c_name, py in STRUCTS.items():
        lines.append(f'printf("{c_name} @sizeof %zu\\n", sizeof({c_name}));')
        for field, _ in py._fields_:
            lines.append(f'printf("{c_name} {field} %zu\\n", offsetof({c_name}, {field}));')
    lines += ["return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c11", "-o", str(exe), str(src)], check=True)
    out: dict[str, tuple[int, dict[str, int]]] = {}
    for line in subprocess.run([str(exe)], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        name, field, value = line.split()
        size, fields = out.get(name, (0, {}))
        if field == "@sizeof":
            out[name] = (int(value), fields)
        else:
            fields[field] = int(value)
            out[name] = (size, fields)
    return out


def test_ctypes_structs_match_bridge_header(tmp_path: Path) -> None:
    layout = _c_layout(tmp_path)
    for c_name, py in STRUCTS.items():
        size, offsets = layout[c_name]
        assert C.sizeof(py) == size, c_name
        for field, _ in py._fields_:
            assert getattr(py, field).offset == offsets[field], f"{c_name}.{field}"


def test_every_bridge_slot_is_declared() -> None:
    declared = re.findall(r"XmCall (\w+);", HEADER.read_text())
    assert declared == [f for f, t in bridge.Bridge._fields_ if t is bridge.XmCall]
