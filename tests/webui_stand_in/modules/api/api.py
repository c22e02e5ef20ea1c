"""The host's API as A1111 1.10 builds it: its routes under /sdapi/v1, each guarded by HTTP
basic authentication when --api-auth is set (a stand-in with the same behaviour)."""

from secrets import compare_digest

from fastapi import Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from modules import shared


class Api:
    def __init__(self, app, queue_lock):
        self.app = app
        self.credentials = dict(pair.split(":") for pair in
                                (shared.cmd_opts.api_auth or "").split(",") if pair)
        self.add_api_route("/sdapi/v1/face-restorers", self.face_restorers, methods=["GET"])

    def add_api_route(self, path, endpoint, **kwargs):
        if shared.cmd_opts.api_auth:
            return self.app.add_api_route(path, endpoint, dependencies=[Depends(self.auth)],
                                          **kwargs)
        return self.app.add_api_route(path, endpoint, **kwargs)

    def auth(self, credentials: HTTPBasicCredentials = Depends(HTTPBasic())):
        expected = self.credentials.get(credentials.username)
        if expected is not None and compare_digest(credentials.password, expected):
            return True
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})

    def face_restorers(self):
        return [{"name": restorer.name()} for restorer in shared.face_restorers]
