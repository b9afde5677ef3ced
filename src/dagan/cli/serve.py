"""Serve the web app (animate and live pages), the HTTP API and live webcam animation."""

from __future__ import annotations

import sys

from dagan.errors import DaganError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def add_arguments(p):
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    p.add_argument("--models", nargs="+", default=[], metavar="DIR",
                   help="model directories offered by name besides the bundled demo model")
    p.add_argument("--token", default=None, help="require this token (bearer header or the login form)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs running at once per model (default 1)")
    p.add_argument("--max-queue", type=int, default=16, help="jobs waiting before 503 (default 16)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="request body limit in MB (default 50)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="longest driving video in seconds (default 60)")
    p.add_argument("--max-live", type=int, default=2, help="live webcam sessions at once (default 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a machine busy with other work)")
    p.add_argument("--work-dir", default=None, help="folder for uploads and results (default: the system temp dir)")


def check_arguments(args) -> None:
    if not 0 <= args.port <= 65535:
        raise DaganError(f"--port must be 0…65535, got {args.port}")
    if args.threads is not None and args.threads < 1:
        raise DaganError(f"--threads must be at least 1, got {args.threads}")
    for name in ("concurrency", "max_live"):
        if getattr(args, name) < 1:
            raise DaganError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("max_queue", "max_upload_mb", "max_seconds"):
        if getattr(args, name) < 0:
            raise DaganError(f"--{name.replace('_', '-')} must be ≥ 0, got {getattr(args, name)}")
    if args.token is not None and not args.token.strip():
        raise DaganError("--token must not be empty")


def host_warning(host: str, token: str | None) -> str | None:
    """The warning for a server reachable from other machines without a token, else None."""
    if host in LOCAL_HOSTS or token is not None:
        return None
    return f"--host {host} exposes the server to the network without --token; anyone who can reach it can use it"


def run(args):
    check_arguments(args)
    try:
        import uvicorn

        from dagan.app.server import ServeConfig, create_app
    except ImportError as exc:
        raise DaganError(f"dagan serve needs the app extra: pip install 'dagan[app]' ({exc.name} is missing)") from None
    from dagan.inference.pipeline import resolve_device

    device = str(resolve_device(args.device))
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    warning = host_warning(args.host, args.token)
    if warning:
        print(f"dagan serve: warning: {warning}", file=sys.stderr)
    config = ServeConfig(models=tuple(args.models), device=device, token=args.token, concurrency=args.concurrency,
                         max_queue=args.max_queue, max_upload_mb=args.max_upload_mb,
                         max_seconds=args.max_seconds or None, max_live=args.max_live, work_dir=args.work_dir)
    app = create_app(config)
    names = ", ".join(app.state.registry.names)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"dagan serve: models {names} on {device}; open http://{host}:{args.port}/", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
