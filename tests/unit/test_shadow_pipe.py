"""Messages between a worker and its challenger process, over a real pipe: whole or nothing."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

from flywheel.serving.shadow_pipe import PipeReader, PipeWriter, ShadowJob


def test_messages_arrive_whole_in_order_then_end_of_file() -> None:
    read_fd, write_fd = os.pipe()
    reader, writer = PipeReader(read_fd), PipeWriter(write_fd)
    big = ShadowJob("r1", datetime.now(UTC), b"x" * 300_000, b"[]")  # past the pipe's buffer
    small = [ShadowJob("r2", datetime.now(UTC), b'{"a": 1}', b'[{"prediction": "No"}]')]

    def send() -> None:
        writer.send([big])
        writer.send(small)
        writer.close()

    sender = threading.Thread(target=send)
    sender.start()
    assert reader.ready(5)
    assert reader.receive() == [big]
    assert reader.receive() == small
    assert reader.receive() is None  # the writer closed its end
    sender.join()
    reader.close()


def test_a_message_cut_off_by_the_writers_death_reads_as_end_of_file() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, (1000).to_bytes(4, "big") + b"only part of it")
    os.close(write_fd)
    reader = PipeReader(read_fd)
    assert reader.receive() is None
    reader.close()
