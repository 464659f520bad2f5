"""The official `openai` client against a real `miva serve` (uvicorn on loopback)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai
import pytest
from serve_helpers import data_url, png, user_message

MODEL = "tiny-random"


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    health = httpx2.get(server[0].url + "/health").json()
    assert health["status"] == "ok" and health["models"] == [MODEL]


def test_single_image_answer(client):
    resp = client.chat.completions.create(
        model=MODEL, messages=[user_message("What colour is the shape?", [png()])]
    )
    choice = resp.choices[0]
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert "miva_trajectory" not in (choice.model_extra or {})


def test_multi_image_with_trajectory(client):
    images = [png((255, 0, 0)), png((0, 255, 0), (80, 48)), png(seed=3)]
    resp = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "ignored: the agent has its own system prompt"},
            user_message("Which image shows the green shape?", images),
        ],
        extra_body={"miva_trajectory": True, "miva_answer_type": "image_index"},
    )
    traj = resp.choices[0].model_extra["miva_trajectory"]
    assert traj["turns"][0] == {
        "role": "user",
        "text": traj["turns"][0]["text"],
        "images": 3,
    }
    assert traj["status"] in (
        "ok",
        "truncated",
        "malformed",
        "tool_error",
        "max_turns",
        "image_budget",
    )
    assert traj["num_turns"] == sum(1 for t in traj["turns"] if t["role"] == "assistant") >= 1


def test_parallel_requests_equal_offline_greedy_rollouts(server, client, serve_cfg):
    """32 concurrent requests: all answered, batched, and each identical to the offline
    greedy rollout of the same sample through the agent runtime."""
    from miva.agent.rollout import rollout
    from miva.serve.agent import answer_text, make_request_sample
    from miva.serve.images import to_png

    srv, served = server
    requests = []
    for i in range(32):
        images = [png(seed=100 + i, size=(56 + 8 * (i % 4), 64))]
        if i % 3 == 0:
            images.append(png(seed=200 + i))
        requests.append((f"Question {i}: what is shown in the image?", images))
    before = httpx2.get(srv.url + "/health").json()

    def ask(item):
        question, images = item
        return client.chat.completions.create(
            model=MODEL,
            messages=[user_message(question, images)],
            extra_body={"miva_trajectory": True},
        )

    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(ask, requests))
    after = httpx2.get(srv.url + "/health").json()
    assert after["requests"] - before["requests"] == 32
    assert after["batches"] - before["batches"] < 32  # requests shared rollout batches
    assert after["largest_batch"] > 1

    samples = [
        make_request_sample(q, [to_png(b, "test", 10**8) for b in imgs]) for q, imgs in requests
    ]
    greedy = serve_cfg.agent.model_copy(update={"temperature": 0.0})
    offline = rollout(served.model, served.processor, samples, greedy, n=1, seed=0)
    for resp, sample, traj in zip(responses, samples, offline, strict=True):
        served_traj = resp.choices[0].model_extra["miva_trajectory"]
        assert resp.choices[0].message.content == answer_text(traj, sample, served.processor)
        assert served_traj["status"] == traj.status
        assert [t["text"] for t in served_traj["turns"]] == [
            t.text for t in traj.turns if t.role != "system"
        ]


def _error(call):
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("case", "status", "fragment"),
    [
        ("no_image", 400, "no image"),
        ("undecodable", 400, "does not decode"),
        ("not_base64", 400, "not valid base64"),
        ("not_an_image_type", 400, "not an image"),
        ("too_many_images", 400, "at most 4"),
        ("remote_url", 400, "data URLs only"),
        ("unknown_model", 404, "not served here"),
        ("assistant_turn", 400, "role 'assistant'"),
        ("stream", 400, "streaming"),
        ("choice_without_options", 400, "miva_choices"),
        ("n_too_large", 400, "n=9"),
        ("empty_question", 400, "no question text"),
    ],
)
def test_bad_requests_get_clear_4xx(client, case, status, fragment):
    q, img = "What is it?", png()
    messages = [user_message(q, [img])]
    kwargs: dict = {"model": MODEL, "messages": messages}
    if case == "no_image":
        kwargs["messages"] = [{"role": "user", "content": q}]
    elif case == "undecodable":
        kwargs["messages"] = [user_message(q, [b"\x89PNG\r\n\x1a\nnot really a png"])]
    elif case == "not_base64":
        kwargs["messages"][0]["content"][1]["image_url"]["url"] = "data:image/png;base64,@@@!"
    elif case == "not_an_image_type":
        kwargs["messages"][0]["content"][1]["image_url"]["url"] = data_url(b"hi", "text/plain")
    elif case == "too_many_images":
        kwargs["messages"] = [user_message(q, [img] * 5)]
    elif case == "remote_url":
        kwargs["messages"][0]["content"][1]["image_url"]["url"] = "http://127.0.0.1:9/x.png"
    elif case == "unknown_model":
        kwargs["model"] = "gpt-4o"
    elif case == "assistant_turn":
        kwargs["messages"] = [*messages, {"role": "assistant", "content": "earlier answer"}]
    elif case == "stream":
        kwargs["stream"] = True
    elif case == "choice_without_options":
        kwargs["extra_body"] = {"miva_answer_type": "choice"}
    elif case == "n_too_large":
        kwargs["n"] = 9
    elif case == "empty_question":
        kwargs["messages"] = [user_message("   ", [img])]
    err = _error(lambda: client.chat.completions.create(**kwargs))
    assert err.status_code == status
    body = err.body if isinstance(err.body, dict) else {}
    assert fragment in body.get("message", str(err))
    assert body.get("type") == "invalid_request_error"


def test_malformed_bodies(server):
    url = server[0].url + "/v1/chat/completions"
    not_json = httpx2.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    no_messages = httpx2.post(url, json={"model": MODEL})
    assert no_messages.status_code == 400
    assert no_messages.json()["error"]["param"] == "messages"
    wrong_type = httpx2.post(url, json={"model": MODEL, "messages": "hello"})
    assert wrong_type.status_code == 400


def test_request_over_the_size_limit_gets_413_and_the_server_keeps_serving(client):
    big = png(seed=7, size=(400, 400))  # noise compresses badly: about 480 KB > 256 KiB
    assert len(big) > 262144
    err = _error(
        lambda: client.chat.completions.create(model=MODEL, messages=[user_message("Q?", [big])])
    )
    assert err.status_code == 413
    ok = client.chat.completions.create(model=MODEL, messages=[user_message("Q?", [png()])])
    assert ok.choices[0].finish_reason in ("stop", "length")


def test_n_choices(client):
    resp = client.chat.completions.create(
        model=MODEL, messages=[user_message("Colour?", [png()])], n=2
    )
    assert [c.index for c in resp.choices] == [0, 1]
    # greedy decoding: both choices are the same rollout
    assert resp.choices[0].message.content == resp.choices[1].message.content


def test_a_failing_rollout_fails_only_its_own_request(server, client, monkeypatch):
    """A rollout error answers 500 to the request that caused it; requests batched with it
    are re-run alone and answered, and the server keeps serving."""
    srv, served = server
    real = served.rollout

    def rollout(batch):
        if any("BOOM" in p.sample.question for p in batch):
            raise RuntimeError("the rollout broke on BOOM")
        return real(batch)

    monkeypatch.setattr(served, "rollout", rollout)
    questions = ["BOOM: what is it?", "What colour is it?", "What shape is it?"]

    def ask(q):
        try:
            return client.chat.completions.create(model=MODEL, messages=[user_message(q, [png()])])
        except openai.APIStatusError as exc:
            return exc

    with ThreadPoolExecutor(3) as pool:
        boom, ok1, ok2 = pool.map(ask, questions)
    assert isinstance(boom, openai.InternalServerError)
    assert "the rollout broke on BOOM" in boom.body["message"]
    assert ok1.choices[0].finish_reason in ("stop", "length")
    assert ok2.choices[0].finish_reason in ("stop", "length")
    assert httpx2.get(srv.url + "/health").json()["failed_requests"] >= 1
