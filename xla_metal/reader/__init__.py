"""Untrusted program bytes are read in a separate reader process, never in the user's.

jaxlib's StableHLO bytecode reader and its HLO -> StableHLO converter are not robust against
corrupt input: single bit flips make them segfault, abort or loop forever (docs/robustness.md,
section 8), which would take down the process that asked for the compile: the user's. Every
program a frontend hands the plugin (PJRT Compile, DeserializeAndLoad) is such input, in all
its forms: portable artifacts, MLIR text, HloModuleProtos. So none of them is parsed here: a
long-lived reader process (server.py: a fresh interpreter importing only jaxlib) reads it and
answers with the module it read, written anew by MLIR's bytecode writer, or with its reasons
for refusing it; this process reads only that answer (client.py). Reading the original bytes
here once the reader had accepted them would not do: some corrupt inputs read memory they do
not own, and whether that crashes depends on the heap.

What the reader writes is trusted: it is MLIR's writer's output for a module that was read and
verified. (A reader made to run code of an attacker's choosing could send anything; the
threat here is a crash or a hang, not such an exploit.)

Why a process started with subprocess rather than a fork per program: a fork of the user's
process costs more the larger it is (313 ms per program in a 3.5 GB test process), while a
round trip to a process that is already running costs about a millisecond plus the read.
"""
