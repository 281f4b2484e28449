"""The production log pipeline: what an operator reads in a JSON log line."""

from __future__ import annotations

import io
import json

import structlog

from callcontrol.logs import configure_logging, get_logger


def test_a_secret_field_is_hidden_in_every_line_and_the_others_are_kept():
    out = io.StringIO()
    configure_logging("json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    log = get_logger("callcontrol.test", call_uuid="a-1")
    for _ in range(2):  # the second line asks about the same field names again
        log.info("db.opened", database="host=db user=cc", Password="hunter2",
                 openai_api_key="sk-1", esl_token="t", attempt=1)  # fmt: skip
    log.info("call.ended", authorization_header="Bearer x", caller="5511988887777")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for line in lines[:2]:
        assert line["Password"] == line["openai_api_key"] == line["esl_token"] == "<hidden>"
        assert (line["database"], line["attempt"], line["call_uuid"]) == ("host=db user=cc", 1,
                                                                          "a-1")  # fmt: skip
    assert lines[2]["authorization_header"] == "<hidden>"
    assert lines[2]["caller"] == "5511988887777"
