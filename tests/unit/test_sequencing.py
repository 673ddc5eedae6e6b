"""How long a reply may hold the replies behind it in its chat: its whole retry schedule."""

import asyncio

from omni_dispatcher.sequencing import Sequencer, retry_schedule_seconds


def test_the_schedule_counts_every_wait_and_every_attempt() -> None:
    # 4 attempts: waits 1, 5, 30 s between them, each attempt up to 10 s
    assert retry_schedule_seconds([1_000, 5_000, 30_000, 120_000], 4, 10.0) == 36 + 40
    # more attempts than steps: the last step repeats
    assert retry_schedule_seconds([200, 400], 4, 0.0) == 0.2 + 0.4 + 0.4


async def test_replies_of_one_chat_take_turns_in_arrival_order_others_run_alongside() -> None:
    sequencer = Sequencer(db=None, stale_after=60.0)  # type: ignore[arg-type]  # turn() never reads the database
    order: list[str] = []

    async def reply(chat: str, name: str, hold: float) -> None:
        async with sequencer.turn(chat):
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    await asyncio.gather(reply("a", "a1", 0.05), reply("a", "a2", 0.0), reply("b", "b1", 0.01))
    assert order.index("a1 out") < order.index("a2 in")
    assert order.index("b1 out") < order.index("a1 out")  # another chat does not wait for chat a
    assert sequencer._turns == {}
