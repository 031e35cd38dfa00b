"""A grpcio (Python) branch server for dtm-bench: answers every unary method with an empty
success, taking the request bytes raw, and prints its port. Run it from the test venv:

    .venv/bin/python tools/branch-servers/grpcio_branch.py [--port N] [--workers 64]
"""
import argparse
import signal
import sys
from concurrent import futures

import grpc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()

    class AnyMethod(grpc.GenericRpcHandler):
        def service(self, details):
            return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    server.add_generic_rpc_handlers((AnyMethod(),))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(1))
    server.wait_for_termination()
    sys.exit(0)


if __name__ == "__main__":
    main()
