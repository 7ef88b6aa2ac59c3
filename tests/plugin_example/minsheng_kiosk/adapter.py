"""The ``kiosk`` adapter: a touch-screen kiosk in a service hall posts one JSON form.

A push adapter: one route, ``POST /intake/<source>``, checked against the kiosk's token
and handed to the intake as it came; the registered ``web_form`` normalizer reads it
(the kiosk sends the web mailbox's field names). Everything it uses of the gateway is
public: the adapter base, the intake, problem details.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, SecretStr

from gateway.intake.pipeline import Intake
from gateway.intake.sources import Adapter
from gateway.model.schema import RawRecord
from gateway.support import problem
from gateway.support.tokens import bearer_ok


class KioskOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr
    hall: str = "service hall"


class KioskSource(Adapter[KioskOptions]):
    channel = "web"
    default_format = "web_form"

    def routes(self, intake: Intake) -> list[web.RouteDef]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if not bearer_ok(request, self.options.token.get_secret_value()):
                return problem.unauthorized()
            raw = RawRecord(
                channel="web", source=self.name,
                source_ref=request.headers.get("X-Kiosk-Ticket") or uuid.uuid4().hex,
                payload=await request.read(), content_type=request.content_type,
                received_at=datetime.now(UTC), metadata={"hall": self.options.hall},
            )
            result = await intake.submit(raw)
            if result.outcome == "rejected":
                return problem.rejected(result.errors, raw_ref=f"raw:{result.raw_id}")
            return web.json_response(result.as_json(), status=202)

        return [web.post(f"/intake/{self.name}", handle)]
