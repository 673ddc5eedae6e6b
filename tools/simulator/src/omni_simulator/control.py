"""The control API under `/_sim/`: tests arm faults, register secrets, store files, read what was received, push."""

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from omni_runtime.service import Slot
from omni_runtime.web import ApiError, parse_body, read_json
from omni_simulator.push import ThirdPartyPush, push_thirdparty
from omni_simulator.state import SimulatorState, StoredFile


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path_prefix: str = Field(pattern=r"^/")
    status: int | None = Field(default=None, ge=100, le=599)
    count: int | None = Field(default=None, ge=1)
    # Fractions are allowed so tests of retry timing need not wait whole seconds.
    retry_after: float | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0, le=600)
    body: str | None = None
    content_type: str | None = None

    @model_validator(mode="after")
    def _does_something(self) -> "FaultBody":
        if self.status is None and not self.delay:
            raise ValueError("a fault needs a status, a delay or both")
        return self


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=1)


def control_routes(state: SimulatorState, http: Slot[httpx.AsyncClient]) -> list[BaseRoute]:
    async def list_requests(request: Request) -> Response:
        selected = state.select(request.query_params.get("path_prefix"), request.query_params.get("provider"))
        return JSONResponse({"items": [r.to_json() for r in selected], "next_cursor": None})

    async def clear_requests(request: Request) -> Response:
        state.clear_requests()
        return Response(status_code=204)

    async def deliveries(request: Request) -> Response:
        return JSONResponse({"counts": dict(state.deliveries(request.query_params.get("provider")))})

    async def arm_fault(request: Request) -> Response:
        body = parse_body(FaultBody, await read_json(request))
        fault = state.arm(**body.model_dump())
        return JSONResponse(fault.to_json(), status_code=201)

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"items": [f.to_json() for f in state.faults], "next_cursor": None})

    async def clear_faults(request: Request) -> Response:
        state.clear_faults()
        return Response(status_code=204)

    async def put_secret(request: Request) -> Response:
        provider: str = request.path_params["provider"]
        state.secrets[provider] = parse_body(SecretBody, await read_json(request)).secret
        # The secret is never echoed back, as with channel settings.
        return JSONResponse({"provider": provider})

    async def put_file(request: Request) -> Response:
        name: str = request.path_params["name"]
        content = await request.body()
        content_type = request.headers.get("content-type", "application/octet-stream")
        state.files[name] = StoredFile(content, content_type)
        url = str(request.url_for("download", name=name))
        return JSONResponse(
            {"name": name, "url": url, "size": len(content), "content_type": content_type}, status_code=201
        )

    async def push(request: Request) -> Response:
        body = parse_body(ThirdPartyPush, await read_json(request))
        try:
            status, answer = await push_thirdparty(http.get(), body)
        except httpx.HTTPError as exc:
            raise ApiError(502, "push_failed", f"{type(exc).__name__}: {exc}") from None
        return JSONResponse({"status": status, "body": answer})

    async def received_file(request: Request) -> Response:
        """The bytes of file `index` of recorded request `seq` (an upload, or what a fetch got)."""
        recorded = state.by_seq(request.path_params["seq"])
        index: int = request.path_params["index"]
        if recorded is None or not 0 <= index < len(recorded.files):
            raise ApiError(404, "not_found", "no such recorded file")
        file = recorded.files[index]
        return Response(file.content, media_type=file.content_type or "application/octet-stream")

    async def reset(request: Request) -> Response:
        state.reset()
        return Response(status_code=204)

    return [
        Route("/_sim/requests", list_requests, methods=["GET"]),
        Route("/_sim/requests", clear_requests, methods=["DELETE"]),
        Route("/_sim/requests/{seq:int}/files/{index:int}", received_file, methods=["GET"]),
        Route("/_sim/deliveries", deliveries, methods=["GET"]),
        Route("/_sim/faults", arm_fault, methods=["POST"]),
        Route("/_sim/faults", list_faults, methods=["GET"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/secrets/{provider}", put_secret, methods=["PUT"]),
        Route("/_sim/files/{name:path}", put_file, methods=["PUT"]),
        Route("/_sim/push/thirdparty", push, methods=["POST"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]
