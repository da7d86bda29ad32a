"""The events stream contract: one typed model per event type, read and written one way."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from contract import events as ev
from contract import keys
from contract.queue import STATUS_OF, TERMINAL_STATUSES, F, JobStatus, finish_args

WHO: dict[str, Any] = {"job_id": "j1", "chat_id": 5, "user_id": 6}


def sticker_result() -> ev.JobResult:
    files = [
        ev.ResultFile(key=f"kb:result:j1:{pos}:{fmt}", format=fmt, width=512, height=384, kind=kind,
                      index=image)
        for pos, (fmt, kind, image) in enumerate([
            ("png", ev.FileKind.STICKER_PNG, 0), ("webp", ev.FileKind.STICKER_WEBP, 0),
            ("png", ev.FileKind.STICKER_PNG, 1), ("webp", ev.FileKind.STICKER_WEBP, 1),
        ])
    ]
    return ev.JobResult(job_id="j1", seed=7, seeds=[7, 8], files=files, timings={"total": 1.5}, worker="w1")


EVENTS: list[ev.Event] = [
    ev.ProgressEvent(**WHO, progress=ev.Progress(stage="decoder", step=3, total=4, seq=9, worker="w1")),
    ev.ProgressEvent(**WHO, progress=ev.Progress(stage="decoder", step=1, total=4, seq=1, worker="w1",
                                           preview="kb:blob:p")),
    ev.DoneEvent(**WHO, result=sticker_result()),
    ev.FailedEvent(**WHO, failure=ev.Failure(reason=ev.FailureReason.TIMEOUT, message="ran 300 s")),
    ev.CancelledEvent(**WHO),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type.value)
def test_every_event_type_survives_a_real_stream(redis_client: redis.Redis, event: ev.Event) -> None:
    redis_client.xadd("s", event.to_fields())  # type: ignore[arg-type]
    reply: Any = redis_client.xread({"s": 0})
    [(_, [(_, fields)])] = reply
    back = ev.parse_event(fields)
    assert back == event and type(back) is type(event)


def test_the_wire_keeps_the_layout_of_earlier_releases() -> None:
    """Envelope plus ``data``: entries an older worker left in the stream still read, and the other way."""
    wire = json.loads(EVENTS[3].to_fields()["event"])
    assert wire == {"type": "failed", **WHO, "data": {"reason": "timeout", "message": "ran 300 s"}}
    old_progress = {"type": "progress", **WHO,
                    "data": {"stage": "prior", "step": 2, "total": 5, "seq": 2, "worker": "w2"}}
    event = ev.parse_event({b"event": json.dumps(old_progress).encode()})
    assert isinstance(event, ev.ProgressEvent) and (event.progress.stage, event.progress.step) == ("prior", 2)
    old_cancel = ev.parse_event({"event": json.dumps({"type": "cancelled", **WHO, "data": {}})})
    assert old_cancel == ev.CancelledEvent(**WHO)


@pytest.mark.parametrize("etype, data", [
    ("progress", {"reason": "timeout", "message": "x"}),
    ("progress", {"stage": "decoder", "step": "three", "total": 4, "seq": 1, "worker": "w"}),
    ("done", {"n": 1}),
    ("done", {"job_id": "j1", "seed": 1, "files": [{"key": "k", "format": "png", "width": 1, "height": 1,
                                                    "kind": "gif", "index": 0}]}),
    ("failed", {"step": 3}),
    ("failed", {"reason": 7, "message": "x"}),
])
def test_a_payload_that_does_not_fit_its_type_is_refused(etype: str, data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        ev.parse_event({"event": json.dumps({"type": etype, **WHO, "data": data})})


def test_a_reason_this_release_does_not_know_reads_as_an_engine_error() -> None:
    """A newer worker's new reason must still end the job for the user (with the generic failure)."""
    wire = {"type": "failed", **WHO, "data": {"reason": "out_of_cheese", "message": "x"}}
    event = ev.parse_event({"event": json.dumps(wire)})
    assert isinstance(event, ev.FailedEvent)
    assert event.failure.reason is ev.FailureReason.ENGINE_ERROR
    assert "out_of_cheese" in event.failure.message and event.failure.message.endswith("x")


@pytest.mark.parametrize("fields, match", [
    ({"event": json.dumps({"type": "exploded", **WHO, "data": {}})}, "does not match any of the expected"),
    ({"event": json.dumps({**WHO, "data": {}})}, "Unable to extract tag"),
    ({"event": "{not json"}, "Invalid JSON"),
    ({"something": "else"}, "no 'event' field"),
])
def test_an_unknown_type_or_a_broken_entry_is_refused(fields: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ev.parse_event(fields)


def test_files_are_found_by_image_and_kind() -> None:
    result = sticker_result()
    assert result.image_indices() == [0, 1]
    webp = result.file(1, ev.FileKind.STICKER_WEBP)
    assert webp is not None and webp.key == "kb:result:j1:3:webp"
    assert result.file(1, ev.FileKind.PHOTO) is None and result.file(2, ev.FileKind.STICKER_PNG) is None


def test_results_stored_before_files_had_kinds_still_read() -> None:
    """Job records keep a result a week: the old positional layout is read into kinds once."""
    def old(fmt: str, pos: int) -> dict[str, Any]:
        return {"key": f"kb:result:j:{pos}:{fmt}", "format": fmt, "width": 512, "height": 512}

    sticker = ev.JobResult.model_validate_json(json.dumps(
        {"job_id": "j", "seed": 1, "files": [old("png", 0), old("webp", 1), old("png", 2), old("webp", 3)]}))
    png, webp = ev.FileKind.STICKER_PNG, ev.FileKind.STICKER_WEBP
    assert [(f.kind, f.index) for f in sticker.files] == [(png, 0), (webp, 0), (png, 1), (webp, 1)]
    photos = ev.JobResult.model_validate({"job_id": "j", "seed": 1,
                                          "files": [old("jpeg", 0), old("jpeg", 1)]})
    assert [(f.kind, f.index) for f in photos.files] == [(ev.FileKind.PHOTO, 0), (ev.FileKind.PHOTO, 1)]
    # A result that names its kinds is taken as written, whatever its order.
    shuffled = sticker.model_copy(update={"files": sticker.files[::-1]})
    again = ev.JobResult.model_validate_json(shuffled.model_dump_json())
    assert again == shuffled and again.file(0, ev.FileKind.STICKER_WEBP) == sticker.files[1]


def test_every_terminal_event_has_the_status_it_leaves() -> None:
    assert set(STATUS_OF) == {ev.EventType.DONE, ev.EventType.FAILED, ev.EventType.CANCELLED}
    assert {s.value for s in STATUS_OF.values()} == set(TERMINAL_STATUSES)


def test_finish_args_write_the_event_and_the_record_fields_it_implies() -> None:
    done = ev.DoneEvent(**WHO, result=sticker_result())
    key_args, argv = finish_args(done, {F.WORKER: "w1"})
    assert key_args == [keys.job("j1"), keys.EVENTS_STREAM]
    assert argv[:2] == [keys.JOB_RECORD_TTL, keys.EVENTS_STREAM_MAXLEN]
    assert ev.parse_event({"event": argv[2]}) == done
    fields = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert fields[F.STATUS] == JobStatus.DONE.value and fields[F.WORKER] == "w1"
    assert ev.JobResult.model_validate_json(str(fields[F.RESULT])) == done.result

    failed = ev.FailedEvent(**WHO, failure=ev.Failure(reason=ev.FailureReason.BAD_INPUT,
                                                      message="not an image"))
    _, argv = finish_args(failed)
    fields = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert (fields[F.STATUS], fields[F.REASON]) == ("failed", "bad_input") and F.RESULT not in fields


def test_only_a_users_input_is_a_failure_no_operator_must_look_at() -> None:
    """The worker logs these at INFO (the user is told), every other failure at WARNING."""
    assert {r for r in ev.FailureReason if r.users_input} == {ev.FailureReason.BAD_INPUT,
                                                            ev.FailureReason.REGION_NOT_FOUND}
