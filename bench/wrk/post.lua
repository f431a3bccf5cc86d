-- wrk script: one POST, its JSON body from $WRK_BODY; with $WRK_CLOSE set, every request on a new connection;
-- $WRK_HEADER ("Name: value") adds a header (Anthropic's anthropic-version).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local name, value = (os.getenv("WRK_HEADER") or ""):match("^([^:]+):%s*(.+)$")
if name then
  wrk.headers[name] = value
end
wrk.body = os.getenv("WRK_BODY")
  or '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there!"}],"max_tokens":16}'
if os.getenv("WRK_CLOSE") then
  wrk.headers["Connection"] = "close"
end
