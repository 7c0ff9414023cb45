-- wrk script of `make bench` (bench/wrk.py): one GraphQL query POSTed to /graphql over and over,
-- its one variable cycling over the values given, every answer checked.
--
--   wrk ... -s bench/graphql_post.lua URL -- QUERY_JSON AUTHORIZATION VARIABLE PATTERN VALUE...
--
-- QUERY_JSON is the query as a JSON string (quotes included); AUTHORIZATION the header's value;
-- VARIABLE the variable's name; PATTERN a Lua pattern every answer's body must contain (a 200
-- without it, or with "errors" beside the data, counts as bad). At the end one line on stdout:
--   WRK {"requests": n, "seconds": s, "bad": n, "errors": n, "quantiles_ms": [q1, ..., q100]}
-- quantiles_ms[k] is the k-th percentile of the latencies, in milliseconds.

local body_of = {}
local headers = nil
local pattern = nil
local next_value = 0
bad = 0 -- a global, so that done() can read each thread's count (thread:get)
first_bad = nil
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local query, authorization, variable = args[1], args[2], args[3]
  pattern = args[4]
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = authorization }
  for n = 5, #args do
    -- values are id numbers and the like: digits, letters and dashes, no JSON escaping needed
    body_of[#body_of + 1] = '{"query":' .. query .. ',"variables":{"' .. variable .. '":"'
      .. args[n] .. '"}}'
  end
  next_value = math.random(#body_of) - 1
end

function request()
  next_value = next_value % #body_of + 1
  return wrk.format("POST", "/graphql", headers, body_of[next_value])
end

function response(status, _, body)
  if status ~= 200 or not string.find(body, pattern) or string.find(body, '"errors":', 1, true) then
    bad = bad + 1
    if first_bad == nil then
      first_bad = status .. " " .. string.sub(body, 1, 200)
    end
  end
end

function done(summary, latency, _)
  local bad_total, example = 0, nil
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    example = example or thread:get("first_bad")
  end
  if example ~= nil then
    io.stderr:write("first bad answer: " .. example .. "\n")
  end
  local quantiles = {}
  for k = 1, 100 do
    quantiles[k] = string.format("%.3f", latency:percentile(k) / 1000)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %.6f, "bad": %d, "errors": %d, "quantiles_ms": [%s]}\n',
    summary.requests, summary.duration / 1e6, bad_total,
    e.connect + e.read + e.write + e.status + e.timeout, table.concat(quantiles, ", ")))
end
