"""Runs the scim2-server peer (PyPI `scim2-server`) as its own `scim2-server` command does
(in-memory storage, wsgiref threading server, bearer token), after seeding it in-process
through the same validation its POST handler uses (`ScimService.read_creation` then
`storage.create`), which is much faster than HTTP and stores exactly what POST would.

Usage: serve.py PORT TOKEN SEED_FILE OUT_FILE
SEED_FILE is JSON: {"users": [body, ...], "groups": [{"body": ..., "memberIndexes": [..]}]}.
OUT_FILE receives {"users": [id, ...], "groups": [id, ...]}; then `READY <url>` is printed.
"""

import json
import secrets
import sys
from wsgiref.simple_server import make_server

from scim2_models import ScimProvider

from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.testserver.cli import ThreadingWSGIServer
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

MEDIA = "application/scim+json"


def main() -> None:
    port, token, seed_file, out_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    service = ScimService(provider, secret=secrets.token_urlsafe(32))
    storage = InMemoryStorage()
    app = BearerTokenApplication(storage, provider, service=service, bearer_tokens=[token])

    with open(seed_file) as f:
        seed = json.load(f)
    user_rt = service.resource_type_at("Users")
    group_rt = service.resource_type_at("Groups")
    out = {"users": [], "groups": []}
    with service.provider:
        for body in seed["users"]:
            resource = service.read_creation(user_rt, json.dumps(body).encode(), MEDIA)
            out["users"].append(storage.create(user_rt, resource).id)
        for g in seed["groups"]:
            body = dict(g["body"])
            body["members"] = [{"value": out["users"][i]} for i in g["memberIndexes"]]
            resource = service.read_creation(group_rt, json.dumps(body).encode(), MEDIA)
            out["groups"].append(storage.create(group_rt, resource).id)
    with open(out_file, "w") as f:
        json.dump(out, f)

    with make_server("127.0.0.1", port, app, server_class=ThreadingWSGIServer) as server:
        print(f"READY http://127.0.0.1:{port}/v2", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
