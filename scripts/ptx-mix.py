#!/usr/bin/env python3
"""Instruction mix of one generated kernel from its PTX, without a GPU: which template lines the
instructions of each kind come from (how session 27 found the repeated operand splits).

Emits the kernel's CUDA source with `tttc emit`, compiles it with nvcc to PTX with line
information (-lineinfo), and attributes every PTX instruction to the innermost source line of its
`.loc`. PTX is not SASS (ptxas adds moves, spills and scheduling), but the arithmetic maps nearly
one to one, and the per-line split shows where a kind of instruction comes from.

Usage: scripts/ptx-mix.py SPEC [--pass backward] [--arch sm_90a] [--schedule FILE]
                          [--tttc build/tools/tttc] [--ops add.f32,sub.f32] [--top 15] [--json]
"""
import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_RE = re.compile(r'\s*\.file\s+(\d+)\s+"([^"]*)"')
LOC_RE = re.compile(r"\s*\.loc\s+(\d+)\s+(\d+)")
INSTR_RE = re.compile(r"\s*(?:@!?%p\d+\s+)?([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="spec file (JSON)")
    p.add_argument("--pass", dest="kernel", default="backward", choices=["forward", "backward"])
    p.add_argument("--arch", default="sm_90a", help="GPU architecture (default sm_90a)")
    p.add_argument("--schedule", help="schedule JSON file (default: the heuristic)")
    p.add_argument("--tttc", default=os.path.join(ROOT, "build", "tools", "tttc"),
                   help="tttc binary (default: build/tools/tttc)")
    p.add_argument("--ops", default="add.f32,sub.f32",
                   help="comma-separated opcode prefixes whose lines to list, or 'all' "
                        "(default: f32 adds)")
    p.add_argument("--top", type=int, default=15, help="lines to list (default 15)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p.parse_args()


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def emit_source(args):
    if not os.access(args.tttc, os.X_OK):
        fail(f"tttc binary '{args.tttc}' not found or not executable (build it, or pass --tttc)")
    command = [args.tttc, "emit", args.spec, "--arch", args.arch, "--pass", args.kernel]
    if args.schedule:
        command += ["--schedule", args.schedule]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"'{' '.join(command)}' failed:\n{run.stderr.strip()}")
    return run.stdout


def compile_ptx(source, arch, workdir):
    cuda = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    nvcc = shutil.which("nvcc") or os.path.join(cuda, "bin", "nvcc")
    if not os.access(nvcc, os.X_OK):
        fail("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    virtual = "compute_" + arch[len("sm_"):] if arch.startswith("sm_") else arch
    src, ptx = os.path.join(workdir, "kernel.cu"), os.path.join(workdir, "kernel.ptx")
    with open(src, "w") as f:
        f.write(source)
    command = [nvcc, "-std=c++17", "-ptx", "-lineinfo", f"-gencode=arch={virtual},code={virtual}",
               "-I" + os.path.join(ROOT, "templates"), "-I" + os.path.join(cuda, "include"),
               "-diag-suppress=177", src, "-o", ptx]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"nvcc failed:\n{run.stderr.strip()}")
    with open(ptx) as f:
        return f.read()


def attribute(ptx):
    """(opcode -> count, (opcode, file, line) -> count) over the PTX's instructions."""
    # nvcc writes the .file table after the code.
    files = {m.group(1): os.path.relpath(m.group(2), ROOT) if m.group(2).startswith(ROOT + os.sep)
             else os.path.basename(m.group(2))
             for m in map(FILE_RE.match, ptx.splitlines()) if m}
    where = ("?", 0)
    by_op, by_line = collections.Counter(), collections.Counter()
    for text in ptx.splitlines():
        if FILE_RE.match(text):
            continue
        m = LOC_RE.match(text)
        if m:
            where = (files.get(m.group(1), m.group(1)), int(m.group(2)))
            continue
        stripped = text.strip()
        if not stripped or stripped[0] in ".{}/$" or stripped.endswith(":"):
            continue
        m = INSTR_RE.match(text)
        if not m:
            continue
        op = m.group(1)
        by_op[op] += 1
        by_line[(op, where[0], where[1])] += 1
    return by_op, by_line


def source_line(path, line):
    full = os.path.join(ROOT, path)
    try:
        with open(full) as f:
            return f.read().splitlines()[line - 1].strip()
    except (OSError, IndexError):
        return ""


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        ptx = compile_ptx(emit_source(args), args.arch, workdir)
    by_op, by_line = attribute(ptx)
    prefixes = [""] if args.ops == "all" else [p for p in args.ops.split(",") if p]
    selected = collections.Counter()
    for (op, path, line), n in by_line.items():
        if any(op.startswith(p) for p in prefixes):
            selected[(path, line)] += n
    if args.json:
        print(json.dumps({
            "spec": args.spec, "pass": args.kernel, "arch": args.arch,
            "instructions": sum(by_op.values()), "opcodes": dict(by_op.most_common()),
            "ops": prefixes, "selected": sum(selected.values()),
            "lines": [{"file": f, "line": l, "count": n, "text": source_line(f, l)}
                      for (f, l), n in selected.most_common(args.top)]}, indent=1))
        return
    print(f"{args.spec} {args.kernel} {args.arch}: {sum(by_op.values())} PTX instructions")
    for op, n in by_op.most_common(args.top):
        print(f"  {n:6d}  {op}")
    print(f"{args.ops}: {sum(selected.values())}, by source line (innermost):")
    for (path, line), n in selected.most_common(args.top):
        print(f"  {n:6d}  {path}:{line}  {source_line(path, line)[:70]}")


if __name__ == "__main__":
    main()
