"""`GET /media/{token}`: the bytes of the one file a signed, unexpired media link names, for messengers that fetch
operators' files by URL (Graph, Twilio, third-party providers).

The token is the only input: it names a file id, which is looked up in GridFS and nothing else. A token that
is not ours (or no key is configured) is 404, one that expired 403. The file is served as a download that can
never run as a page of our origin (ingress shares the console's host behind the proxy).
"""

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from omni_providers.media import MediaLinks, MediaTokenExpired, MediaTokenInvalid
from omni_runtime.database import Database
from omni_runtime.files import FileStore, file_headers
from omni_runtime.web import ApiError


def media_route(db_of: Callable[[], Database], links: MediaLinks | None) -> Route:
    async def media(request: Request) -> Response:
        """The bytes of the one file a signed, unexpired media link names.
        ---
        get:
          summary: An operator's file, for a messenger that fetches it by URL
          tags: [media]
          responses:
            "200":
              description: the file, as a download (`nosniff`, sandbox CSP, RFC 6266 name)
              content: {application/octet-stream: {schema: {type: string, format: binary}}}
            "403":
              description: the link has expired
              content: &error
                application/json: {schema: {$ref: "#/components/schemas/Error"}}
            "404": {description: "not a link we signed, or no such file", content: *error}
        head:
          summary: The headers of the same answer, without the bytes
          tags: [media]
          responses:
            "200": {description: the file's headers}
            "403": {description: the link has expired}
            "404": {description: "not a link we signed, or no such file"}
        """
        missing = ApiError(404, "not_found", "no file at this media link")
        if links is None:
            raise missing
        try:
            file_id = links.file_of(request.path_params["token"], time.time())
        except MediaTokenExpired:
            raise ApiError(403, "link_expired", "this media link has expired") from None
        except MediaTokenInvalid:
            raise missing from None
        stream = await FileStore(db_of()).open(file_id)
        if stream is None:
            raise missing
        headers = file_headers(stream.file)
        media_type = headers.pop("Content-Type")
        if request.method == "HEAD":
            await stream.close()
            return Response(headers=headers, media_type=media_type)
        return StreamingResponse(stream.chunks(), headers=headers, media_type=media_type)

    return Route("/media/{token}", media, methods=["GET", "HEAD"])
