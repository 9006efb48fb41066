"""Classic BPF as seccomp uses it: encoding, emulator, disassembler, assembler."""
