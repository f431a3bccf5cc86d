-- wrk script: the benchmark's non-streaming chat completion request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there!"}],"max_tokens":16}'
