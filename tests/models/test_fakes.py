"""The fake servers themselves: usable from synchronous code on their own thread, and honest."""

from __future__ import annotations

import anthropic
import openai

from tests.fakes import anthropic_server as A
from tests.fakes import openai_server as O
from tests.models.harness import API_KEY


def test_fakes_run_in_a_thread_for_synchronous_clients() -> None:
    with A.AnthropicFake().in_thread() as fake:
        fake.add(A.stream(A.events(A.text("sync ", "works"))))
        client = anthropic.Anthropic(base_url=fake.url, api_key=API_KEY, max_retries=0)
        with client.messages.stream(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            assert s.get_final_text() == "sync works"
        client.close()
        assert fake.requests[0].finished


def test_openai_fake_in_a_thread() -> None:
    with O.OpenAIFake().in_thread() as fake:
        fake.add(O.stream(O.text_chunks("yes")))
        client = openai.OpenAI(base_url=fake.url, api_key=API_KEY, max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
        client.close()
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "yes"


def test_an_empty_script_fails_loudly() -> None:
    with A.AnthropicFake().in_thread() as fake:
        client = anthropic.Anthropic(base_url=fake.url, api_key=API_KEY)
        try:
            client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
        except anthropic.APIStatusError as exc:
            assert exc.status_code == 599
            assert "no scripted response" in str(exc)
        else:
            raise AssertionError("an unscripted request must fail")
        finally:
            client.close()
        assert len(fake.requests) == 1  # x-should-retry: false, so the SDK does not retry
