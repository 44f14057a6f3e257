#!/usr/bin/env python3
"""lint.layers: the module layering written down in src/LAYERS holds.

Reads every #include of src/ and include/kmsrelay/, maps each file and each
included header to its module, and fails on:
  - a file in src/ (or a header in include/kmsrelay/) no module owns,
  - an include pointing up (to a module listed later in src/LAYERS),
  - a cycle between modules,
  - a library header (<ldns/...>, <lmdb.h>, ...) outside the one module
    allowed to include it.
Usage: layers.py ROOT
"""
import os
import re
import sys

INC = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def read_layers(path):
    order, owner, only = [], {}, []
    for raw in open(path, encoding="utf-8"):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split("--", 1)[0].split()
        if words[0] == "only":
            only.append((words[1], words[2]))
            continue
        order.append(words[0])
        for p in words[1:]:
            owner[("h:" + p) if p.endswith(".h") else ("d:" + p)] = words[0]
    return order, owner, only


def module_of_file(rel, owner):
    """rel: path relative to ROOT."""
    parts = rel.split("/")
    if parts[0] == "src" and len(parts) > 2:
        return owner.get("d:" + parts[1])
    if parts[0] == "include" and len(parts) == 3 and parts[1] == "kmsrelay":
        return owner.get("h:" + parts[2])
    return None


def module_of_include(name, own_mod, owner):
    if name.startswith("kmsrelay/"):
        return owner.get("h:" + name.split("/", 1)[1])
    if "/" in name:
        return owner.get("d:" + name.split("/", 1)[0])
    return own_mod  # "rpc-internal.h": beside the file


def main(root):
    order, owner, only = read_layers(os.path.join(root, "src", "LAYERS"))
    rank = {m: i for i, m in enumerate(order)}
    errors, edges = [], {}
    files = []
    for top in ("src", os.path.join("include", "kmsrelay")):
        for d, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                if n.endswith((".c", ".h")):
                    files.append(os.path.relpath(os.path.join(d, n), root))
    for rel in sorted(files):
        mod = module_of_file(rel, owner)
        if mod is None:
            errors.append("%s: no module in src/LAYERS owns this file" % rel)
            continue
        text = open(os.path.join(root, rel), encoding="utf-8", errors="replace").read()
        for kind, name in INC.findall(text):
            if kind == "<":
                for prefix, allowed in only:
                    if name.startswith(prefix) and mod != allowed:
                        errors.append("%s: includes <%s>, which only %s may include"
                                      % (rel, name, allowed))
                continue
            to = module_of_include(name, mod, owner)
            if to is None:
                errors.append('%s: includes "%s", which no module in src/LAYERS owns'
                              % (rel, name))
                continue
            if to == mod:
                continue
            edges.setdefault(mod, {}).setdefault(to, rel)
            if rank[to] > rank[mod]:
                errors.append('%s: %s includes "%s" of %s, a module above it (see src/LAYERS)'
                              % (rel, mod, name, to))
    # Cycles (reported even though an upward include already fails).
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, {})):
            if state.get(t) == 1:
                cyc = stack[stack.index(t):] + [t]
                errors.append("module cycle: %s" % " -> ".join(cyc))
            elif not state.get(t):
                visit(t)
        stack.pop()
        state[m] = 2
    for m in order:
        if not state.get(m):
            visit(m)
    for e in errors:
        print("lint.layers: " + e)
    n_edges = sum(len(v) for v in edges.values())
    print("lint.layers: %d files, %d modules, %d module dependencies, %d problems"
          % (len(files), len(order), n_edges, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else
                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
