// bassi web UI: a view of one session's events, rebuilt from the event stream.
//
// The page subscribes to /api/sessions/{id}/ws?after=SEQ and folds every event into the DOM,
// in seq order, once. When the connection drops it reconnects from the last seq it applied, so
// nothing is missed or shown twice. Commands (create, prompt, cancel, approve, switch model)
// go through the REST API. Model output is rendered by BassiMarkdown (escaped, sanitized);
// everything else is put in the page as text, never as HTML.
"use strict";
(() => {
  const $ = (selector) => document.querySelector(selector);
  const WATCHDOG_MS = 45000; // the server pings every 15 s; silence this long means a dead link
  const MAX_INSPECTED = 5000;

  /** Build an element; children are nodes or strings (strings become text, never HTML). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // --- REST ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, type, message) {
      super(message);
      this.status = status;
      this.type = type;
    }
  }

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    if (response.status === 401) {
      window.location.href = "/login";
      throw new ApiError(401, "Unauthorized", "log in first");
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.type || "Error", error.message || response.statusText);
    }
    return data;
  }

  let toastTimer = null;
  function toast(message) {
    const box = $("#toast");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  const report = (error) => toast(error instanceof ApiError ? error.message : String(error));

  // --- the view of one session ----------------------------------------------------------------

  function newView(id) {
    return {
      id,
      lastSeq: 0,
      title: "",
      model: "",
      status: "idle",
      runActive: false,
      ended: false,
      pending: new Set(),
      usage: { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0 },
      messages: new Map(), // message_id -> {node, blocks: Map(index -> block)}
      tools: new Map(), // tool_call_id -> card parts
      events: [],
    };
  }

  let view = null;
  let socket = null;
  let reconnectTimer = null;
  let reconnectDelay = 500;
  let watchdog = null;
  const dirty = new Set();
  let renderScheduled = false;

  const conversation = () => $("#conversation");

  function scrollToEnd() {
    const box = conversation();
    const nearEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 200;
    if (nearEnd) requestAnimationFrame(() => { box.scrollTop = box.scrollHeight; });
  }

  function append(node) {
    conversation().append(node);
    scrollToEnd();
    return node;
  }

  function notice(kind, text) {
    return append(el("div", { class: `notice ${kind}` }, text));
  }

  function scheduleRender(block) {
    dirty.add(block);
    if (renderScheduled) return;
    renderScheduled = true;
    requestAnimationFrame(() => {
      renderScheduled = false;
      for (const item of dirty) renderBlock(item);
      dirty.clear();
      scrollToEnd();
    });
  }

  function renderBlock(block) {
    if (block.type === "text") block.body.innerHTML = window.BassiMarkdown.render(block.text);
    else if (block.type === "thinking") block.body.textContent = block.text;
  }

  function message(messageId) {
    let entry = view.messages.get(messageId);
    if (!entry) {
      const blocks = el("div", { class: "blocks" });
      const node = el("div", { class: "msg assistant", "data-message-id": messageId },
        el("div", { class: "role" }, "assistant"), blocks);
      append(node);
      entry = { node, blocksNode: blocks, blocks: new Map() };
      view.messages.set(messageId, entry);
    }
    return entry;
  }

  function block(messageId, index, type, toolCallId, toolName) {
    const entry = message(messageId);
    let item = entry.blocks.get(index);
    if (item) return item;
    if (type === "thinking") {
      const body = el("div", { class: "thinking-text" });
      const summary = el("summary", {}, "Thinking…");
      const node = el("details", { class: "block thinking" }, summary, body);
      item = { type, node, body, summary, text: "" };
    } else if (type === "tool_use") {
      const card = toolCard(toolCallId, toolName, null);
      item = { type, node: card.node, card, text: "" };
    } else {
      const body = el("div", { class: "block text markdown" });
      item = { type: "text", node: body, body, text: "" };
    }
    entry.blocksNode.append(item.node);
    entry.blocks.set(index, item);
    scrollToEnd();
    return item;
  }

  function sessionName(title, id) {
    // The same name in the list and the header; an untitled session goes by its id's start.
    return title || `Session ${(id || "").slice(0, 8)}`;
  }

  // --- tool cards -----------------------------------------------------------------------------

  const STATUS_TEXT = {
    requested: "requested",
    awaiting: "waiting for approval",
    allowed: "allowed",
    running: "running…",
    done: "done",
    error: "error",
    failed: "failed",
    denied: "denied",
    skipped: "not run",
    interrupted: "interrupted",
  };

  const STOPPED_SHORT = {
    // Stop reasons a user should hear about: the answer may be incomplete.
    max_tokens: "the reply hit the token limit",
    max_turns: "the run hit its turn limit",
    refusal: "the model refused",
    model_context_window_exceeded: "the conversation no longer fits the model",
  };

  const NOT_A_PERSON = {
    // Deciders that close a pending call when its run ends: no one denied it.
    cancel: "the run was cancelled",
    recovery: "the run was cut off by a restart",
  };

  function toolCard(toolCallId, toolName, input) {
    let card = view.tools.get(toolCallId);
    if (card) return card;
    const name = el("span", { class: "tool-name" }, toolName || "tool");
    const status = el("span", { class: "tool-status" });
    const duration = el("span", { class: "tool-duration" });
    const inputNode = el("pre", { class: "tool-input" });
    const permission = el("div", { class: "permission", hidden: true });
    const output = el("pre", { class: "tool-output", hidden: true });
    const node = el("div", { class: "tool-card", "data-tool-call-id": toolCallId },
      el("div", { class: "tool-head" }, name, status, duration), inputNode, permission, output);
    card = { node, name, status, duration, inputNode, permission, output, inputText: "" };
    view.tools.set(toolCallId, card);
    setToolStatus(card, "requested");
    if (input) setToolInput(card, input);
    return card;
  }

  function orphanCard(event) {
    // A tool event without its message (e.g. a stream that started late): show it anyway.
    const card = toolCard(event.tool_call_id, event.tool_name, event.input);
    if (!card.node.isConnected) append(card.node);
    return card;
  }

  function setToolStatus(card, status, detail) {
    // Who allowed the call stays on the card while it runs and once it has finished.
    const said = detail || (card.allowedBy && status !== "allowed" ? `allowed by ${card.allowedBy}` : "");
    card.node.dataset.status = status;
    card.status.textContent = said ? `${STATUS_TEXT[status]} · ${said}` : STATUS_TEXT[status];
  }

  function setToolInput(card, input) {
    card.inputNode.textContent = JSON.stringify(input, null, 2);
  }

  function askPermission(card, event) {
    setToolStatus(card, "awaiting");
    const decide = (decision, always) => async () => {
      for (const button of card.permission.querySelectorAll("button")) button.disabled = true;
      try {
        await api("POST", `/api/sessions/${encodeURIComponent(view.id)}/approvals/${encodeURIComponent(event.tool_call_id)}`,
          { decision, always });
      } catch (error) {
        for (const button of card.permission.querySelectorAll("button")) button.disabled = false;
        report(error);
      }
    };
    card.permission.replaceChildren(
      el("span", { class: "permission-reason" }, event.reason || `${event.tool_name} wants to run`),
      el("button", { type: "button", class: "allow-once", onclick: decide("allow", false) }, "Allow once"),
      el("button", { type: "button", class: "allow-always", onclick: decide("allow", true) }, "Allow always"),
      el("button", { type: "button", class: "deny", onclick: decide("deny", false) }, "Deny"),
    );
    card.permission.hidden = false;
  }

  function closePermission(card) {
    card.permission.hidden = true;
    card.permission.replaceChildren();
  }

  function showOutput(card, text, isError) {
    card.output.textContent = text;
    card.output.hidden = false;
    card.output.classList.toggle("error", Boolean(isError));
  }

  // --- folding events into the page -----------------------------------------------------------

  function describeUsage(usage) {
    return `${usage.input_tokens || 0} in · ${usage.output_tokens || 0} out`;
  }

  function seconds(ms) {
    return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
  }

  function apply(event) {
    if (!view || event.session_id !== view.id || event.seq <= view.lastSeq) return;
    view.lastSeq = event.seq;
    inspect(event);
    switch (event.type) {
      case "session_started":
        view.title = event.title;
        view.model = event.model;
        break;
      case "model_switched":
        view.model = event.model;
        notice("info", `Model switched from ${event.previous} to ${event.model}.`);
        break;
      case "permission_mode_changed":
        notice("info", `Permission mode is now ${event.mode}.`);
        break;
      case "permission_rule_added":
        notice("info", `Rule added by ${event.added_by}: ${event.rule}`);
        break;
      case "session_recovered":
        recovered(event);
        break;
      case "session_ended":
        view.ended = true;
        notice("info", `Session ended${event.reason ? `: ${event.reason}` : "."}`);
        break;
      case "prompt_received":
        view.runActive = true;
        append(el("div", { class: "msg user", "data-run-id": event.run_id },
          el("div", { class: "role" }, event.user ? `you (${event.user})` : "you"),
          el("div", { class: "user-text" }, event.content)));
        break;
      case "run_started":
        view.runActive = true;
        if (event.resumed) notice("info", "The interrupted run carries on.");
        break;
      case "plan_generated": {
        const body = el("div", { class: "block text markdown" });
        body.innerHTML = window.BassiMarkdown.render(event.plan);
        append(el("div", { class: "msg assistant plan" }, el("div", { class: "role" }, "plan"), body));
        break;
      }
      case "message_started":
        message(event.message_id);
        break;
      case "content_block_started":
        block(event.message_id, event.index, event.block_type, event.tool_call_id, event.tool_name);
        break;
      case "token_delta": {
        const item = block(event.message_id, event.index,
          event.channel === "tool_input" ? "tool_use" : event.channel);
        item.text += event.text;
        if (item.type === "tool_use") item.card.inputNode.textContent = item.text;
        else scheduleRender(item);
        break;
      }
      case "content_block_stopped": {
        const item = view.messages.get(event.message_id)?.blocks.get(event.index);
        if (item && item.type === "thinking") item.summary.textContent = "Thinking";
        break;
      }
      case "message_completed":
        completeMessage(event);
        break;
      case "permission_requested": {
        const card = orphanCard(event);
        view.pending.add(event.tool_call_id);
        askPermission(card, event);
        break;
      }
      case "permission_decided": {
        const card = orphanCard(event);
        view.pending.delete(event.tool_call_id);
        closePermission(card);
        if (event.decision === "allow") {
          card.allowedBy = event.decided_by;
          setToolStatus(card, "allowed", `by ${event.decided_by}`);
        }
        else if (event.decided_by in NOT_A_PERSON) setToolStatus(card, "skipped", NOT_A_PERSON[event.decided_by]);
        else setToolStatus(card, "denied", `by ${event.decided_by}${event.reason ? `: ${event.reason}` : ""}`);
        break;
      }
      case "tool_call_started": {
        const card = orphanCard(event);
        setToolInput(card, event.input);
        setToolStatus(card, "running");
        break;
      }
      case "tool_call_completed": {
        const card = orphanCard(event);
        view.pending.delete(event.tool_call_id);
        closePermission(card);
        setToolStatus(card, event.is_error ? "error" : "done");
        card.duration.textContent = seconds(event.duration_ms);
        const marker = event.truncated ? `\n[output truncated from ${event.original_size} bytes]` : "";
        showOutput(card, event.output + marker, event.is_error);
        break;
      }
      case "tool_call_failed": {
        const card = orphanCard(event);
        view.pending.delete(event.tool_call_id);
        closePermission(card);
        const denied = ["denied", "skipped"].includes(card.node.dataset.status);
        if (!denied) setToolStatus(card, event.interrupted ? "interrupted" : "failed");
        if (event.duration_ms) card.duration.textContent = seconds(event.duration_ms);
        showOutput(card, event.error, true);
        break;
      }
      case "run_completed":
        endRun();
        notice("run-end", `Run completed · ${event.turns} turn${event.turns === 1 ? "" : "s"} · `
          + `${describeUsage(event.usage)} tokens · ${seconds(event.duration_ms)}`
          + (STOPPED_SHORT[event.stop_reason] ? ` · ${STOPPED_SHORT[event.stop_reason]}` : ""));
        break;
      case "run_cancelled":
        endRun();
        notice("cancelled", `Run cancelled (${event.mode})${event.reason ? `: ${event.reason}` : ""}.`);
        break;
      case "run_failed":
        endRun();
        notice("failed", `Run failed: ${event.message}`);
        break;
      case "run_interrupted":
        endRun();
        notice("interrupted", `Run interrupted: ${event.reason}`);
        break;
      case "error":
        notice("error", `Error in ${event.where} (${event.error_type}): ${event.message}`);
        break;
      default:
        break; // event types this page does not know yet still show in the inspector
    }
    refreshHeader();
  }

  function completeMessage(event) {
    const entry = message(event.message_id);
    event.content.forEach((content, index) => {
      if (content.type === "text") {
        const item = block(event.message_id, index, "text");
        item.text = content.text;
        scheduleRender(item);
      } else if (content.type === "thinking") {
        const item = block(event.message_id, index, "thinking");
        item.text = content.thinking;
        item.summary.textContent = "Thinking";
        scheduleRender(item);
      } else if (content.type === "tool_use") {
        const item = block(event.message_id, index, "tool_use", content.id, content.name);
        item.card.name.textContent = content.name;
        setToolInput(item.card, content.input);
      }
    });
    // A call the model was still writing when it stopped (out of tokens, say) is not part of
    // the finished message and never runs.
    const kept = new Set(event.content.filter((c) => c.type === "tool_use").map((c) => c.id));
    for (const item of entry.blocks.values()) {
      if (item.type === "tool_use" && !kept.has(item.card.node.dataset.toolCallId)) {
        setToolStatus(item.card, "skipped", `the reply stopped first (${event.stop_reason})`);
      }
    }
    entry.node.dataset.complete = "true";
    for (const key of Object.keys(view.usage)) view.usage[key] += (event.usage && event.usage[key]) || 0;
  }

  function endRun() {
    view.runActive = false;
    view.pending.clear();
    for (const card of view.tools.values()) {
      if (!card.permission.hidden) closePermission(card);
    }
  }

  function recovered(event) {
    // A message the restart cut off never completes: say so, and let a resumed run's next
    // message (which may reuse its id) start afresh below it.
    for (const [messageId, entry] of view.messages) {
      if (entry.node.dataset.complete === "true") continue;
      entry.node.dataset.cut = "true";
      entry.node.append(el("div", { class: "cut-note" }, "cut off by a restart"));
      view.messages.delete(messageId);
    }
    const calls = event.interrupted_tool_calls.length;
    const what = event.action === "continue"
      ? "the run carries on"
      : event.action === "mark" ? "the run was marked interrupted" : "nothing needed doing";
    notice("recovery", `Recovered after a restart: ${calls} interrupted tool call`
      + `${calls === 1 ? "" : "s"} closed; ${what}.`);
  }

  function refreshHeader() {
    if (!view) return;
    view.status = view.ended ? "ended"
      : !view.runActive ? "idle"
      : view.pending.size ? "awaiting_approval" : "running";
    $("#session-title").textContent = sessionName(view.title, view.id);
    const status = $("#session-status");
    status.hidden = false;
    status.textContent = view.status.replace("_", " ");
    status.dataset.status = view.status;
    const modelInput = $("#model-input");
    if (document.activeElement !== modelInput) modelInput.value = view.model;
    modelInput.disabled = view.ended || view.runActive;
    $("#usage").textContent = `${describeUsage(view.usage)} tokens`;
    $("#send").disabled = view.ended || view.runActive;
    $("#prompt").disabled = view.ended;
    $("#cancel").disabled = !view.runActive;
    markActiveSession();
  }

  // --- event inspector ------------------------------------------------------------------------

  function inspect(event) {
    view.events.push(event);
    if (view.events.length > MAX_INSPECTED) view.events.shift();
    if (!$("#inspector").hidden) addInspectorRow(event);
  }

  function addInspectorRow(event) {
    const filter = $("#inspector-filter").value.trim();
    if (filter && !event.type.includes(filter)) return;
    const list = $("#inspector-list");
    const json = el("pre", { class: "event-json", hidden: true }, JSON.stringify(event, null, 2));
    const row = el("li", { class: "event-row", "data-seq": event.seq, "data-type": event.type },
      el("button", { type: "button", class: "event-summary", onclick: () => { json.hidden = !json.hidden; } },
        el("span", { class: "seq" }, String(event.seq)), el("span", { class: "type" }, event.type)),
      json);
    list.append(row);
    while (list.children.length > MAX_INSPECTED) list.firstChild.remove();
  }

  function renderInspector() {
    $("#inspector-list").replaceChildren();
    if (view) for (const event of view.events) addInspectorRow(event);
  }

  // --- the event stream -----------------------------------------------------------------------

  function setConnection(state, text) {
    const box = $("#connection");
    box.dataset.state = state;
    $("#connection-text").textContent = text || state;
  }

  function armWatchdog(ws) {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => ws.close(), WATCHDOG_MS);
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (!view) return;
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    // batch=1: a fast stream arrives as arrays of consecutive events, far fewer frames.
    const url = `${scheme}://${window.location.host}/api/sessions/${encodeURIComponent(view.id)}/ws?after=${view.lastSeq}&batch=1`;
    const ws = new WebSocket(url);
    socket = ws;
    setConnection("connecting", "connecting…");
    ws.onopen = () => {
      if (ws !== socket) return;
      reconnectDelay = 500;
      setConnection("connected", "live");
      armWatchdog(ws);
    };
    ws.onmessage = (message) => {
      if (ws !== socket) return;
      armWatchdog(ws);
      const data = JSON.parse(message.data);
      if (Array.isArray(data)) data.forEach(apply);
      else if (data.type === "reply" && data.ok === false) toast(data.error.message);
      else if (typeof data.seq === "number" && data.event_id) apply(data);
    };
    ws.onclose = () => {
      if (ws !== socket) return;
      clearTimeout(watchdog);
      socket = null;
      setConnection("reconnecting", "reconnecting…");
      reconnectTimer = setTimeout(probeAndReconnect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 5000);
    };
  }

  async function probeAndReconnect() {
    if (!view) return;
    try {
      await api("GET", `/api/sessions/${encodeURIComponent(view.id)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        setConnection("offline", "session not found");
        return;
      }
      // Server still down (or restarting): try again later.
      setConnection("reconnecting", "server unreachable, retrying…");
      reconnectTimer = setTimeout(probeAndReconnect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 5000);
      return;
    }
    connect();
  }

  function disconnect() {
    clearTimeout(reconnectTimer);
    clearTimeout(watchdog);
    const ws = socket;
    socket = null;
    if (ws) ws.close();
    setConnection("offline", "offline");
  }

  // --- sessions -------------------------------------------------------------------------------

  let sessions = [];

  async function refreshSessions() {
    try {
      sessions = (await api("GET", "/api/sessions")).sessions;
    } catch (error) {
      return;
    }
    const list = $("#session-list");
    list.replaceChildren(...sessions.map((s) => el("li", {},
      el("button", {
        type: "button",
        class: "session-item",
        "data-session-id": s.id,
        onclick: () => selectSession(s.id),
      },
      el("span", { class: "session-name" }, sessionName(s.title, s.id)),
      el("span", { class: "status", "data-status": s.status }, s.status.replace("_", " ")),
      el("span", { class: "session-model" }, s.model)))));
    markActiveSession();
  }

  function markActiveSession() {
    for (const button of document.querySelectorAll(".session-item")) {
      const active = view && button.dataset.sessionId === view.id;
      button.classList.toggle("active", Boolean(active));
      if (active && view) {
        const badge = button.querySelector(".status");
        badge.dataset.status = view.status;
        badge.textContent = view.status.replace("_", " ");
      }
    }
  }

  function selectSession(id) {
    if (view && view.id === id && socket) return;
    disconnect();
    view = newView(id);
    conversation().replaceChildren();
    $("#inspector-list").replaceChildren();
    if (window.location.hash !== `#/s/${id}`) window.history.replaceState(null, "", `#/s/${id}`);
    refreshHeader();
    connect();
  }

  async function createSession(event) {
    event.preventDefault();
    const title = $("#new-title").value.trim();
    try {
      const session = await api("POST", "/api/sessions", { title });
      $("#new-title").value = "";
      await refreshSessions();
      selectSession(session.id);
      $("#prompt").focus();
    } catch (error) {
      report(error);
    }
  }

  // --- commands -------------------------------------------------------------------------------

  async function sendPrompt(event) {
    event.preventDefault();
    if (!view) return;
    const box = $("#prompt");
    const content = box.value;
    if (!content.trim()) return;
    $("#send").disabled = true;
    try {
      await api("POST", `/api/sessions/${encodeURIComponent(view.id)}/prompts`, { content });
      box.value = "";
    } catch (error) {
      report(error);
    } finally {
      refreshHeader();
    }
  }

  async function cancelRun() {
    if (!view) return;
    try {
      await api("POST", `/api/sessions/${encodeURIComponent(view.id)}/cancel`, { mode: "immediate" });
    } catch (error) {
      report(error);
    }
  }

  async function switchModel() {
    const input = $("#model-input");
    const model = input.value.trim();
    if (!view || !model || model === view.model) return;
    try {
      await api("POST", `/api/sessions/${encodeURIComponent(view.id)}/model`, { model });
    } catch (error) {
      input.value = view.model;
      report(error);
    }
  }

  async function loadModels() {
    try {
      const models = await api("GET", "/api/models");
      $("#model-options").replaceChildren(...models.suggestions.map((m) => el("option", { value: m })));
      const note = $("#fallback-note");
      if (models.scripted_fallback) {
        const keys = models.providers.filter((p) => p.key_variable).map((p) => p.key_variable);
        note.textContent = "No model provider key is configured, so sessions use the offline "
          + "scripted model (/help lists what it understands; try /bash ls or /stream 20 50). Set "
          + `${keys.slice(0, 3).join(", ")} or another provider's key and restart to use a real model.`;
        note.hidden = false;
      }
    } catch (error) {
      // the page still works without suggestions
    }
  }

  // --- start ----------------------------------------------------------------------------------

  function start() {
    $("#new-session").addEventListener("submit", createSession);
    $("#composer").addEventListener("submit", sendPrompt);
    $("#prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (!$("#send").disabled) $("#composer").requestSubmit();  // not while a run works
      }
    });
    $("#cancel").addEventListener("click", cancelRun);
    $("#model-input").addEventListener("change", switchModel);
    $("#toggle-inspector").addEventListener("click", () => {
      const panel = $("#inspector");
      panel.hidden = !panel.hidden;
      $("#toggle-inspector").setAttribute("aria-pressed", String(!panel.hidden));
      if (!panel.hidden) renderInspector();
    });
    $("#inspector-filter").addEventListener("input", renderInspector);
    window.addEventListener("hashchange", () => {
      const match = window.location.hash.match(/^#\/s\/(.+)$/);
      if (match) selectSession(decodeURIComponent(match[1]));
    });
    loadModels();
    refreshSessions().then(() => {
      const match = window.location.hash.match(/^#\/s\/(.+)$/);
      if (match) selectSession(decodeURIComponent(match[1]));
      else if (sessions.length) selectSession(sessions[0].id);
    });
    setInterval(refreshSessions, 3000);
  }

  start();
})();
