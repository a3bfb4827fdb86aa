"""The worker process of one config (docs/python.md): elaborates the KPU platform once, then
serves requests from its parent over stdin/stdout (pickled tuples): ("load", kpu_text,
weights) makes a program current, ("run", inputs) is one program launch through the host
interface; ("begin", inputs), ("advance", cycles), ("state",), ("memory_trace",) and
("finish",) run one launch step by step (KPUSimulator). An empty stdin ends it. Every reply is ("ok", value) or ("error", message).
Usage: python -m kpu._worker CONFIG [OVERRIDE ...]"""
import os
import pickle
import sys


def main():
    # The protocol keeps the real stdout; anything printed (SystemC's banner, reports) goes to stderr.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    from kpu import _native
    platform = None
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            # Ends without tearing the module tree down (SystemC 2.3 does that slowly, and
            # nothing is left to write): as kpu-sim, which releases its platform.
            channel.close()
            os._exit(0)
        try:
            if platform is None:
                platform = _native.Platform(sys.argv[1], sys.argv[2:])
            if request[0] == "load":
                program = _native.Program.from_kpu(request[1], "program")
                for name, value in request[2].items():
                    program.set_weight(name, value)
                platform.load(program)
                reply = ("ok", None)
            elif request[0] in ("run", "finish"):
                r = platform.run(request[1]) if request[0] == "run" else platform.finish()
                reply = ("ok", (dict(r.outputs), r.cycles, r.stats, dict(r.op_metrics), _native.Platform.elaborations()))
            elif request[0] == "begin":
                reply = ("ok", platform.begin(request[1]))
            elif request[0] == "advance":
                reply = ("ok", platform.advance(request[1]))
            elif request[0] == "state":
                reply = ("ok", dict(platform.state()))
            elif request[0] == "memory_trace":
                reply = ("ok", platform.memory_trace())
            else:
                reply = ("error", f"unknown request {request[0]!r}")
        except Exception as e:  # noqa: BLE001 - every failure goes back to the parent as one message
            reply = ("error", str(e))
        pickle.dump(reply, channel, protocol=pickle.HIGHEST_PROTOCOL)
        channel.flush()


if __name__ == "__main__":
    main()
