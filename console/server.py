"""Assembles the console's sub-application from its login routes, its pages and its static files."""

from __future__ import annotations

from aiohttp import web

from console.app import HERE, Console, ConsoleConfig, ConsolePorts, build_middleware, login_routes
from console.pages import page_routes


def build_console_app(config: ConsoleConfig, ports: ConsolePorts) -> web.Application:
    """The sub-application to mount at `/console` (`app.add_subapp("/console", ...)`)."""
    console = Console(config, ports)
    app = web.Application(middlewares=[build_middleware(console)])
    app.router.add_routes(login_routes(console))
    app.router.add_routes(page_routes(console))
    app.router.add_static("/static", HERE / "static")
    return app
