"""What each fault kind of the vocabulary (:mod:`tests.soak.faults.plan`) does to the site.

One :class:`Action` per kind: ``apply`` and ``heal`` take the step and return the
details worth recording; an exception means the fault could not be applied (an API
call the master did not answer, say) and is recorded as such. A role added later
(a standby master, an etcd member) needs its targets in :meth:`Actions.server` and,
for a kind new to it, a branch in that kind's action.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.soak.faults.cluster import EdgeSite, Server, Site, database_files, set_immutable
from tests.soak.faults.plan import Step

Details = dict[str, Any]
Apply = Callable[[Step], Awaitable[Details]]


@dataclass(frozen=True)
class Action:
    apply: Apply
    heal: Apply | None = None


class Actions:
    """The site's side of every fault kind."""

    def __init__(self, site: Site) -> None:
        self.site = site
        #: Secrets issued by a rotation and not yet deployed, by edge.
        self._new_secrets: dict[str, str] = {}
        #: Files made immutable, by step id.
        self._frozen_files: dict[int, list[Any]] = {}
        #: The tasks that cut links once a certificate has expired, by step id.
        self._expiries: dict[int, asyncio.Task[None]] = {}
        self.table: dict[str, Action] = {
            "kill": Action(self._kill, self._start),
            "freeze": Action(self._freeze, self._thaw),
            "store": Action(self._store_fails, self._store_works),
            "cert_expiry": Action(self._short_certificate, self._renew_certificate),
            "cut_link": Action(self._cut, self._mend),
            "cut_link_edge_api": Action(self._cut, self._mend),
            "cut_link_master_api": Action(self._cut, self._mend),
            "rotate_secret": Action(self._rotate, self._deploy_secret),
            "clone": Action(self._clone, self._unclone),
            "restore": Action(self._restore),
            "takeover": Action(self._takeover),
        }

    def server(self, name: str) -> Server:
        return self.site.named(name)

    def edge(self, name: str) -> EdgeSite:
        return self.site.edges[name]

    # --- processes --------------------------------------------------------------------

    async def _kill(self, step: Step) -> Details:
        server = self.server(step.target)
        pid = server.pid
        await server.kill()
        return {"pid": pid}

    async def _start(self, step: Step) -> Details:
        server = self.server(step.target)
        await server.start("restarted after the kill")
        return {"pid": server.pid}

    async def _freeze(self, step: Step) -> Details:
        server = self.server(step.target)
        server.freeze()
        return {"pid": server.pid}

    async def _thaw(self, step: Step) -> Details:
        self.server(step.target).thaw()
        return {}

    # --- storage ----------------------------------------------------------------------

    async def _store_fails(self, step: Step) -> Details:
        files = database_files(self.server(step.target).process)
        set_immutable(files, True)
        self._frozen_files[step.id] = files
        return {"files": [f.name for f in files]}

    async def _store_works(self, step: Step) -> Details:
        set_immutable(self._frozen_files.pop(step.id, []), False)
        return {}

    # --- certificates -----------------------------------------------------------------

    async def _short_certificate(self, step: Step) -> Details:
        """Restarted serving a certificate that expires ``life_s`` later; once it has,
        the connections to it are cut, so every peer must verify it again."""
        server = self.server(step.target)
        life = float(step.params["life_s"])
        server.process.settings.update(self.site.certificates.issue(server.name, life))
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=life)
        await server.restart(f"serving a certificate that expires at {expires:%H:%M:%S}")
        self._expiries[step.id] = asyncio.create_task(self._cut_after(server, life + 0.5))
        return {"life_s": life, "expires": expires.isoformat(timespec="seconds")}

    async def _cut_after(self, server: Server, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if server.role == "master":
            proxies = [p for edge in self.site.edges.values() for p in edge.proxies[:2]]
        else:
            proxies = [self.edge(server.location or server.name).edge_api]
        for proxy in proxies:
            proxy.cut()

    async def _renew_certificate(self, step: Step) -> Details:
        expiry = self._expiries.pop(step.id, None)
        if expiry is not None:
            expiry.cancel()
        server = self.server(step.target)
        server.process.settings.update(self.site.certificates.issue(server.name))
        await server.restart("serving a renewed certificate")
        return {}

    # --- network ----------------------------------------------------------------------

    def _paths(self, step: Step) -> list[Any]:
        edge = self.edge(step.target)
        return {
            "cut_link": [edge.link],
            "cut_link_edge_api": [edge.link, edge.edge_api],
            "cut_link_master_api": [edge.link, edge.master_api],
        }[step.kind]

    async def _cut(self, step: Step) -> Details:
        for proxy in self._paths(step):
            proxy.pause()
        return {}

    async def _mend(self, step: Step) -> Details:
        for proxy in self._paths(step):
            proxy.resume()
        return {}

    # --- the edge's secret ------------------------------------------------------------

    async def _rotate(self, step: Step) -> Details:
        edge = self.edge(step.target)
        grace = float(step.params["grace_s"])
        answer = await self.site.api(
            "POST", f"/api/edges/{edge.edge_id}/secret", {"grace_s": grace}, timeout=5
        )
        self._new_secrets[edge.name] = answer["secret"]
        return {"grace_s": grace}

    async def _deploy_secret(self, step: Step) -> Details:
        """The operator installs the new secret on the edge and restarts it."""
        edge = self.edge(step.target)
        secret = self._new_secrets.pop(edge.name, None)
        if secret is None:
            return {"deployed": False}
        edge.secret = secret
        edge.server.process.settings["ENGINE_EDGE_SECRET"] = secret
        await edge.server.restart("restarted with the rotated secret")
        return {"deployed": True}

    # --- a cloned edge ----------------------------------------------------------------

    async def _clone(self, step: Step) -> Details:
        clone = await self.site.clone(self.edge(step.target))
        return {"clone": clone.name}

    async def _unclone(self, step: Step) -> Details:
        edge = self.edge(step.target)
        for clone in edge.clones:
            await clone.stop()
        return {}

    # --- operators --------------------------------------------------------------------

    async def _restore(self, step: Step) -> Details:
        return await self._operate(step, "restore")

    async def _takeover(self, step: Step) -> Details:
        return await self._operate(step, "takeover")

    async def _operate(self, step: Step, what: str) -> Details:
        edge = self.edge(step.target)
        try:
            answer = await self.site.api("POST", f"/api/edges/{edge.edge_id}/{what}", timeout=5)
        except httpx.HTTPStatusError as exc:
            detail = ""
            with contextlib.suppress(ValueError):
                detail = str(exc.response.json().get("detail", ""))[:160]
            raise Refused(f"{exc.response.status_code}: {detail}") from None
        return {"controller": answer["controller"], "epoch": answer["epoch"]}


class Refused(Exception):
    """The master answered the operator's request with an error."""
