"""serve: the best trained MLP over HTTP (`ablate serve`).

Depends on the model card (`ablate.card`) and the engine only, never on the run store.

- `app`: the app factory and its lifespan; `service`: what handlers share (DI)
- `inference`, `friendly`, `site`, `operations`: the routes (Open Inference Protocol,
  /v1, the drawing page, /metrics); `protocol`: the V2 messages and their parsing;
  `openapi`: schemas of the bodies the handlers parse themselves
- `batcher`: micro-batching, supervised; `decoding`, `decode_worker`, `segments` and
  `preprocess`: images (decoded in worker processes under a deadline)
- `api_error`, `errors`, `middleware`, `bodies`, `http`: error answers, request
  checks, the budget of request bodies held, connection limits
- `config`: settings; `server`: start-up (uvicorn)
"""

__all__: list[str] = []  # the package exposes its modules, not names
