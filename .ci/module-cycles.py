#!/usr/bin/env python3
"""Fails when two source files of the crate import each other, directly or
through others: the module graph must stay acyclic (generation at the bottom,
then config and providers, models, the pipeline, the doors, the routes).

An edge is a `use` of another file's module (`crate::`, `super::`, or a child
module by name) or an inline `crate::a::b` path; `mod x;` declarations are
not edges. Prints each cycle it finds and exits 1, else prints the count of
files and edges and exits 0. Only the standard library is used.

Also fails when a file outside `store/` imports `store` other than the
wiring (`state.rs`, `server.rs`): Redis is an adapter under the domain
modules' ports, and the pipeline and the doors cannot reach it.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    return text


def use_paths(tree, prefix=()):
    """Flattens a use tree (`a::{b, c::d}`) into paths."""
    tree = tree.strip()
    if not tree:
        return []
    depth, parts, cur = 0, [], ""
    if tree.startswith("{") and tree.endswith("}"):
        inner = tree[1:-1]
        for ch in inner:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        return [p for part in parts for p in use_paths(part, prefix)]
    head, sep, rest = tree.partition("::")
    head = head.split(" as ")[0].strip()
    if not sep:
        return [prefix + (head,)]
    return use_paths(rest, prefix + (head,))


def main():
    files = {}
    for dirpath, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                if rel == "main.rs":
                    continue
                files[module_of(rel)] = rel
    graph = {rel: set() for rel in files.values()}
    for module, rel in files.items():
        text = strip_comments(open(os.path.join(ROOT, rel)).read())
        # Unit tests in the file itself are not part of the module graph.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{", text)[0]
        children = set(re.findall(r"\bmod\s+(\w+)\s*[;{]", text))
        paths = []
        for tree in re.findall(r"\buse\s+([^;]+);", text):
            paths += use_paths(" ".join(tree.split()))
        paths += [tuple(p.split("::")) for p in re.findall(r"\bcrate(?:::\w+)+", text)]
        for path in paths:
            if path[0] == "crate":
                absolute = path[1:]
            elif path[0] == "super":
                base = module
                while path and path[0] == "super":
                    base, path = base[:-1], path[1:]
                absolute = base + path
            elif path[0] == "self":
                absolute = module + path[1:]
            elif path[0] in children:
                absolute = module + path
            else:
                continue  # another crate, or the standard library
            target = max((m for m in files if absolute[: len(m)] == m), key=len)
            if files[target] != rel:
                graph[rel].add(files[target])
    # Tarjan's strongly connected components.
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    edges = sum(len(e) for e in graph.values())
    wiring = {"state.rs", "server.rs"}
    reaching = sorted(
        v
        for v, targets in graph.items()
        if not v.startswith("store" + os.sep)
        and v not in wiring
        and any(w.startswith("store" + os.sep) for w in targets)
    )
    for v in reaching:
        print(f"{v} imports store: only {', '.join(sorted(wiring))} may (the wiring)")
    if cycles:
        for component in cycles:
            print("import cycle among:", ", ".join(component))
            for v in component:
                print(f"  {v} -> {', '.join(sorted(w for w in graph[v] if w in component))}")
        return 1
    if reaching:
        return 1
    print(f"module graph: {len(graph)} files, {edges} imports, no cycle, store reached only by the wiring")
    return 0


if __name__ == "__main__":
    sys.exit(main())
