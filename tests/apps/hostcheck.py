"""A function app for checking the local host's semantics, beside the real one.

Its queue functions go through Lifeboat's real dispatch (`dispatch.deliver`), so the poison and
last-delivery reporting they show are the product's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import azure.functions as func

from shared import dispatch
from shared.messages import Payload
from shared.names import Queue
from shared.services import services

app = func.FunctionApp()

calls: Counter[str] = Counter()
seen: list[tuple[str, str, int]] = []
_lock = threading.Lock()


def record(function: str, detail: str = "", count: int = 0) -> None:
    with _lock:
        calls[function] += 1
        seen.append((function, detail, count))


def reset() -> None:
    with _lock:
        calls.clear()
        seen.clear()


def _always_fails(payload: Payload, ctx: dispatch.Context) -> dispatch.Result:
    raise ConnectionResetError("the service went away")


def _succeeds(payload: Payload, ctx: dispatch.Context) -> dispatch.Result:
    return dispatch.Done()


def _deliver(queue: str, msg: func.QueueMessage, handler: dispatch.Handler) -> None:
    dispatch.deliver(
        services(),
        queue,  # type: ignore[arg-type]
        msg.get_body(),
        message_id=msg.id or "",
        dequeue_count=msg.dequeue_count or 1,
        handlers={Queue.ONBOARDING.value: handler},
    )


@app.function_name("flaky")
@app.queue_trigger(arg_name="msg", queue_name="flaky-work", connection="AzureWebJobsStorage")
def flaky(msg: func.QueueMessage) -> None:
    record("flaky", msg.id or "", msg.dequeue_count or 0)
    _deliver("flaky-work", msg, _always_fails)


@app.function_name("steady")
@app.queue_trigger(arg_name="msg", queue_name="steady-work", connection="AzureWebJobsStorage")
def steady(msg: func.QueueMessage) -> None:
    record("steady", msg.id or "", msg.dequeue_count or 0)
    _deliver("steady-work", msg, _succeeds)


@app.function_name("slow")
@app.queue_trigger(arg_name="msg", queue_name="slow-work", connection="AzureWebJobsStorage")
def slow(msg: func.QueueMessage) -> None:
    record("slow", msg.id or "", msg.dequeue_count or 0)
    time.sleep(float(msg.get_body().decode()))


@app.function_name("events")
@app.event_grid_trigger(arg_name="event")
def events(event: func.EventGridEvent) -> None:
    record("events", event.subject or "")
    if "fail" in (event.subject or ""):
        raise RuntimeError("this event fails")
    time.sleep(0.3)


@app.function_name("tick")
@app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    record("tick", "past_due" if timer.past_due else "on_time")
