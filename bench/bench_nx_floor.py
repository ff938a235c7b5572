"""Memory and time of networkx's MultiDiGraph adjacency layout alone, as the IR holds it, for N nodes in chains.

    python bench/bench_nx_floor.py 2250000 [--unshared]

One node-data dict, `_succ` and `_pred` entries per node; one key dict and one edge-data dict per edge
(shared between edges, as ir/graph.py shares them, unless --unshared). No Node objects, attrs or protos:
the floor under any IR built on networkx's layout.
"""

import gc
import sys
import time


def rss_mib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 >> 20


def main() -> None:
    count, shared = int(sys.argv[1]), "--unshared" not in sys.argv
    gc.disable()
    before, began = rss_mib(), time.process_time()
    succ, pred, node = {}, {}, {}
    edge, previous = {"kind": "data", "src_port": 0, "dst_index": 0}, None
    for i in range(count):
        name = "c%d/n%d" % (i // 100, i % 100)
        succ[name], pred[name], node[name] = {}, {}, {"node": None}
        if previous is not None and i % 100:
            keyed = succ[previous][name] = pred[name][previous] = {}
            keyed[("data", 0)] = edge if shared else dict(edge)
        previous = name
    used = rss_mib() - before
    print("%d nodes: networkx layout %d MiB (%.0f B/node), %.1f s CPU" % (
        count, used, used * 1048576 / count, time.process_time() - began))


if __name__ == "__main__":
    main()
