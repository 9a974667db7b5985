-- Argo CD custom health check for Connection (connection-operator.dev/v1alpha1).
-- Install it under resource.customizations.health.connection-operator.dev_Connection in the
-- argocd-cm ConfigMap (see docs/install.md). Argo CD evaluates it with gopher-lua (Lua 5.1),
-- with the live object in the global `obj`.
--
-- The Connection follows kstatus: a `Ready` condition and `status.observedGeneration`.
--   Healthy      Ready=True for the current generation
--   Progressing  the operator has not observed the current generation yet, the provider
--                account is rate limited, or a retryable failure is being retried
--   Degraded     a terminal failure that needs a human: the spec or credentials are wrong,
--                the provider or upstream connection is missing, or (Observe mode) drift
--   Suspended    spec.suspend is true

local hs = {}

-- Reasons of Ready=False that retrying will not fix (terminal failures, docs/controller.md).
local terminal = {
  InvalidSpec = true,
  Unauthorized = true,
  UpstreamNotFound = true,
  ProviderNotFound = true,
  ProviderMismatch = true,
  -- A ConfigMap or Secret of metadataFrom/configFrom that does not exist (Argo CD applies
  -- ConfigMaps and Secrets before custom resources, so one still missing is a mistake).
  ReferenceNotFound = true,
  -- Observe mode reports drift and never writes: someone must reconcile by hand.
  DriftDetected = true,
}

local function condition(status, ctype)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil then
    return c.reason
  end
  return fallback
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
local observed = nil
if status ~= nil then
  observed = status.observedGeneration
end

if observed == nil or observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
-- A condition set for an older generation says nothing about the current spec.
if ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition of generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

if ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Suspended")
  return hs
end

local limited = condition(status, "RateLimited")
if ready.reason == "RateLimited" or (limited ~= nil and limited.status == "True") then
  hs.status = "Progressing"
  hs.message = describe(limited, describe(ready, "Rate limited"))
  return hs
end

if terminal[ready.reason] then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. describe(ready, ready.reason)
  return hs
end

-- Retryable failures (UpstreamUnavailable), ProviderNotReady, Deleting, Unknown.
hs.status = "Progressing"
hs.message = describe(ready, "Reconciling")
return hs
