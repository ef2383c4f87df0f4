"""A FastAPI app calling an OpenAI-compatible provider through the official
SDK, with the Fusebox transport: every worker process of
`uvicorn app:app --workers 4` asks the same sidecar, so one breaker protects
them all. Settings from the environment: FUSEBOX_SOCKET, PROVIDER_URL."""
import os

import httpx2
import openai
from fastapi import FastAPI, HTTPException

from fusebox import BreakerOpen, Fusebox
from fusebox.httpx2 import Transport

PROVIDER_URL = os.environ.get("PROVIDER_URL", "http://127.0.0.1:8000/v1")

# One client per worker process (uvicorn forks before importing the app, and the client is fork-safe anyway).
fb = Fusebox()
host = httpx2.URL(PROVIDER_URL).netloc.decode()
llm = openai.OpenAI(base_url=PROVIDER_URL, api_key=os.environ.get("OPENAI_API_KEY", "-"), max_retries=0,
                    http_client=httpx2.Client(transport=Transport(fb, routes={host: "openai"})))

app = FastAPI()


@app.post("/ask")
def ask(question: dict) -> dict:
    try:
        reply = llm.chat.completions.create(model="m", messages=[{"role": "user", "content": question.get("q", "")}])
    except BreakerOpen as refused:
        raise HTTPException(503, f"the provider is {refused.state}; try again in {refused.retry_in_ms} ms")
    except openai.APIError as failed:
        raise HTTPException(502, f"the provider failed: {failed}")
    return {"answer": reply.choices[0].message.content, "worker": os.getpid()}
