"""The bot's Matrix session: its client and device, one login per data directory (the access
token and device id kept in `<data_dir>/credentials.json`, so restarts add no devices), the
device's encryption keys, its own keys in the database, and the goodbye (presence offline).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from nio import AsyncClient, AsyncClientConfig, LoginResponse, PresenceSetResponse, WhoamiResponse
from nio.exceptions import LocalProtocolError

from .errors import TRANSIENT, MatrixLoginError, ServerError

log = logging.getLogger(__package__)  # one logger for the whole transport: todobot.bot.matrix


class CountingClient(AsyncClient):
    """An AsyncClient that counts the HTTP requests it makes (for logs and tests)."""

    requests = 0

    async def send(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.requests += 1
        return await super().send(*args, **kwargs)


class Session:
    """Login and the device, for MatrixTransport (transport.py holds the state)."""

    def _open_client(self) -> None:
        """The client, its store (encryption keys) in the data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = self.data_dir / "store"
        store.mkdir(exist_ok=True, mode=0o700)
        cfg = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, store_sync_tokens=False,
                                encryption_enabled=self.e2ee)
        self.client = CountingClient(self.mcfg.homeserver.rstrip("/"), self.mcfg.user_id,
                                     store_path=str(store), config=cfg)

    def _kv(self, what: str) -> str:
        return f"matrix:{self.mcfg.user_id}:{what}"

    @property
    def _credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    async def _login(self) -> None:
        client = self.client
        assert client is not None
        saved = self._load_credentials()
        if saved is not None:
            client.restore_login(self.mcfg.user_id, saved["device_id"], saved["access_token"])
            who = await client.whoami()
            if not isinstance(who, WhoamiResponse):
                if who.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN"):
                    raise MatrixLoginError(
                        f"matrix: the homeserver refused the saved access token for "
                        f"{self.mcfg.user_id} ({who.status_code}: {who.message}); it was revoked "
                        f"or logged out. Delete {self._credentials_file} to log in again.")
                raise ServerError(f"whoami failed: {who.status_code} {who.message}",
                                   retry_after=(who.retry_after_ms or 0) / 1000 or None)
        elif self.mcfg.access_token_env:
            client.access_token = self.mcfg.access_token() or ""
            who = await client.whoami()
            if not isinstance(who, WhoamiResponse):
                raise MatrixLoginError(
                    f"matrix: the access token in ${self.mcfg.access_token_env} was refused "
                    f"({who.status_code}: {who.message}).")
            if who.user_id != self.mcfg.user_id:
                raise MatrixLoginError(f"matrix: the access token belongs to {who.user_id}, "
                                       f"not {self.mcfg.user_id}.")
            client.restore_login(who.user_id, who.device_id or "", client.access_token)
            self._save_credentials(client.device_id, client.access_token)
        else:
            resp = await client.login(self.mcfg.password() or "", device_name=self.mcfg.device_name)
            if not isinstance(resp, LoginResponse):
                if resp.status_code == "M_LIMIT_EXCEEDED":
                    raise ServerError("login rate-limited", (resp.retry_after_ms or 1000) / 1000)
                raise MatrixLoginError(f"matrix: login as {self.mcfg.user_id} failed "
                                       f"({resp.status_code}: {resp.message}).")
            self._save_credentials(resp.device_id, resp.access_token)
            log.info("matrix: logged in as %s, new device %s", resp.user_id, resp.device_id)
        self._logged_in = True
        log.info("matrix: %s on device %s (e2ee %s)", client.user_id, client.device_id,
                 "on" if self.e2ee else "off")

    def _load_credentials(self) -> dict[str, str] | None:
        try:
            data = json.loads(self._credentials_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise MatrixLoginError(f"matrix: cannot read {self._credentials_file}: {exc}") from None
        if data.get("user_id") != self.mcfg.user_id or data.get("homeserver") != self.mcfg.homeserver:
            log.warning("matrix: %s is for another account; logging in afresh",
                        self._credentials_file)
            return None
        return data

    def _save_credentials(self, device_id: str, token: str) -> None:
        tmp = self._credentials_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"homeserver": self.mcfg.homeserver, "user_id": self.mcfg.user_id,
                       "device_id": device_id, "access_token": token}, f)
        os.replace(tmp, self._credentials_file)

    async def _kv_get(self, what: str) -> str | None:
        if self.repo is None:
            return None
        async with self.repo.session("matrix", write=False) as s:
            return await s.kv_get(self._kv(what))

    async def _kv_set(self, what: str, value: str) -> None:
        if self.repo is not None:
            async with self.repo.session("matrix") as s:
                await s.kv_set(self._kv(what), value)

    async def _say_offline(self) -> None:
        """Presence `offline`, so people see the bot gone now rather than when the server's
        own timeout notices. A server without presence (or one that is down) costs one bounded
        request and a debug line."""
        assert self.client is not None
        try:
            resp = await asyncio.wait_for(self.client.set_presence("offline"), 5)
        except (*TRANSIENT, LocalProtocolError) as exc:
            log.debug("matrix: could not set presence offline: %s", exc or type(exc).__name__)
            return
        if isinstance(resp, PresenceSetResponse):
            log.info("matrix: told the homeserver we are offline")
        else:
            log.debug("matrix: presence offline refused: %s %s", resp.status_code, resp.message)

    async def _crypto_housekeeping(self) -> None:
        client = self.client
        assert client is not None
        try:
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())
            await client.send_to_device_messages()
        except LocalProtocolError as exc:
            log.debug("matrix: key housekeeping skipped: %s", exc)

