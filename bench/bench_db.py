"""The scratch PostgreSQL database every benchmark makes, fills and drops."""

import os
import sys
from pathlib import Path
from typing import Any


def server_params(url: str) -> tuple[str, dict[str, Any]]:
    """The database name, and how to reach the server it lives on.

    Exits unless `url` is PostgreSQL and the name holds "bench": the database is
    dropped, so never one that could hold real data.
    """
    import dj_database_url

    script = f"bench/{Path(sys.argv[0]).name}"
    config = dj_database_url.parse(url)
    if "postgresql" not in config["ENGINE"]:
        sys.exit(f"{script} needs PostgreSQL; got {url!r}")
    name = config["NAME"]
    if "bench" not in name:
        sys.exit(f"{script} drops its database; {name!r} lacks 'bench'")
    params = {
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    return name, params


def drop_database(url: str, *, create: bool) -> str:
    """Drop the database (ending its sessions first), create it again if asked;
    returns the server's version."""
    import psycopg
    from psycopg import sql

    name, params = server_params(url)
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        version = conn.execute("SHOW server_version").fetchone()
    return version[0].split()[0] if version else "?"


def configure_django(default_url: str) -> str:
    """Point Django at the benchmark's database (BENCH_DATABASE_URL, else
    `default_url`) with production-like settings; returns the URL. Must run before
    anything imports Django's settings."""
    url = os.environ.get("BENCH_DATABASE_URL", default_url)
    os.environ.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            # Off even under `make bench`: DEBUG keeps every query in memory.
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-only",
            "DJANGO_ALLOWED_HOSTS": "localhost",
        }
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    return url
