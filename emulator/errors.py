"""ARM error answers: `{"error": {"code", "message", ...}}` with the real status codes (Compute's
throttling answers come unwrapped, `{"code", "message", ...}`)."""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    """Raised by handlers; the app turns it into ARM's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
        additional_info: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        repeated_headers: list[tuple[str, str]] | None = None,
        unwrapped: bool = False,
        inner_error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details
        self.additional_info = additional_info
        self.headers = headers or {}
        self.repeated_headers = repeated_headers or []
        """Headers sent once per value (Compute sends each throttling policy in its own)."""
        self.unwrapped = unwrapped
        self.inner_error = inner_error

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        if self.details is not None:
            error["details"] = self.details
        if self.additional_info is not None:
            error["additionalInfo"] = self.additional_info
        if self.inner_error is not None:
            error["innererror"] = self.inner_error
        return error if self.unwrapped else {"error": error}


def resource_not_found(resource_type: str, name: str, group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def group_not_found(group: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")


def subscription_not_found(subscription: str) -> ArmError:
    return ArmError(
        404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found."
    )
