-- wrk script: one POST, its JSON body from $WRK_BODY; with $WRK_CLOSE set, every request on a new connection.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("WRK_BODY")
  or '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there!"}],"max_tokens":16}'
if os.getenv("WRK_CLOSE") then
  wrk.headers["Connection"] = "close"
end
