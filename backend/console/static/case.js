/* The case page: live details, timeline and chat; assign, connect (with heartbeat), close. */
"use strict";

(() => {
  const { api, t, el, badge, when, toast, follow, settings, copy } = SOS;
  const code = settings.case.code;
  const path = `/cases/${code}`;
  const $ = (id) => document.getElementById(id);
  const FINAL = new Set(["closed", "expired"]);
  let current = settings.case;
  let connected = false;
  let heartbeat = null;
  let lastMessage = 0;
  const seenEvents = new Set();

  const sourceNames = { manual: "Opened by an expert", first_launch: "First launch of the app", sos_button: "SOS button", api: "API" };

  function render(c) {
    current = c;
    badge($("status"), c.status);
    $("assignee").textContent = c.assignee ? c.assignee.display_name : t("Unassigned");
    $("customer").textContent = c.customer.name || "–";
    $("email").textContent = c.customer.email || "–";
    $("description").textContent = (c.topic ? `[${c.topic}] ` : "") + (c.description || "–");
    $("group").textContent = c.group.name;
    $("source").textContent = t(sourceNames[c.source] || c.source) + (c.deployment ? ` · ${c.deployment.name}` : "");
    const device = [c.device.hostname, c.device.os, c.device.agent_version && `agent ${c.device.agent_version}`].filter(Boolean);
    $("device").textContent = device.join(" · ") || "–";
    $("created").textContent = when(c.created_at);
    $("expires").textContent = FINAL.has(c.status) ? when(c.closed_at || c.expires_at) : when(c.expires_at);
    $("customer-presence").textContent = c.customer_connected ? t("connected") : t("not connected");
    $("expert-presence").textContent = c.connected_expert
      ? t("{name} connected", { name: c.connected_expert.display_name }) : t("not connected");
    const final = FINAL.has(c.status);
    const mine = connected && c.connected_expert?.username === settings.me.username;
    $("claim").hidden = final || c.assignee?.username === settings.me.username;
    $("claim").textContent = c.assignee ? t("Take over") : t("Assign to me");
    $("assign").disabled = final;
    $("assign-to").disabled = final;
    $("assign-to").value = c.assignee ? c.assignee.username : "";
    $("connect").hidden = final || mine;
    $("disconnect").hidden = final || !mine;
    $("close").hidden = final;
    $("message").disabled = final;
    document.querySelector("#chat button").disabled = final;
    if (final && connected) stopHeartbeat();
  }

  async function refresh() {
    try {
      render(await api("GET", path));
    } catch (error) {
      if (error.status === 404) {
        toast(t("This case was deleted or moved out of your groups."), "error");
        setTimeout(() => location.assign("/console/queue"), 1500);
      }
    }
  }

  function addMessage(m) {
    if (m.id <= lastMessage) return;
    lastMessage = m.id;
    $("messages").append(el("li", { class: `message ${m.author.kind}` },
      el("span", { class: "who" }, m.author.name || t(m.author.kind === "customer" ? "Customer" : "Expert")),
      el("time", { datetime: m.created_at }, when(m.created_at)),
      el("p", {}, m.body)));
    $("messages").lastElementChild.scrollIntoView({ block: "nearest" });
  }

  async function loadMessages() {
    const data = await api("GET", `${path}/messages?after=${lastMessage}`);
    data.messages.forEach(addMessage);
  }

  function describe(e) {
    const d = e.data || {};
    switch (e.type) {
      case "case.created": return t("Case opened ({source})", { source: t(sourceNames[d.source] || d.source || "") });
      case "case.assigned": {
        const target = d.assignee ? t("Assigned to {name}", { name: d.assignee.display_name }) : t("Returned to the group");
        return d.reason ? `${target} — ${d.reason}` : target;
      }
      case "case.routed": return t("Routing: {reason}", { reason: d.reason || d.policy });
      case "case.connected": return d.side === "customer" ? t("The customer connected") : t("{name} connected", { name: e.actor.name });
      case "case.disconnected": {
        const who = d.side === "customer" ? t("The customer") : t("The expert");
        return d.reason === "timeout" ? t("{who} left (no heartbeat)", { who }) : t("{who} disconnected", { who });
      }
      case "case.message": return d.message?.author?.kind === "customer" ? t("Message from the customer") : t("Message from {name}", { name: e.actor.name });
      case "case.closed": return d.by === "customer" ? t("Closed by the customer") : t("Closed by {name}", { name: e.actor.name });
      case "case.expired": return t("Expired without being closed");
      case "case.edited": return t("Edited: {fields}", { fields: (d.fields || []).join(", ") });
      case "case.moved": return t("Moved from {from} to {to}", { from: d.from?.name, to: d.to?.name });
      case "case.deleted": return t("Deleted");
      default: return e.type;
    }
  }

  function addEvent(e) {
    if (seenEvents.has(e.id)) return;
    seenEvents.add(e.id);
    $("timeline").append(el("li", {},
      el("time", { datetime: e.created_at }, when(e.created_at)), " ", describe(e)));
  }

  async function loadTimeline() {
    const data = await api("GET", `${path}/events`);
    data.events.forEach(addEvent);
  }

  async function act(method, suffix, body, done) {
    try {
      const result = await api(method, path + suffix, body);
      if (result && result.code) render(result);
      if (done) done(result);
    } catch (error) {
      toast(error.message, "error");
      refresh();
    }
  }

  function startHeartbeat() {
    connected = true;
    clearInterval(heartbeat);
    heartbeat = setInterval(() => act("POST", "/heartbeat"), settings.heartbeat_seconds * 1000);
  }

  function stopHeartbeat() {
    connected = false;
    clearInterval(heartbeat);
    heartbeat = null;
  }

  $("copy-code").addEventListener("click", () => copy(code));
  $("claim").addEventListener("click", () => {
    const body = { assignee: "me", if_unassigned: !current.assignee };
    act("POST", "/assign", body, () => toast(t("{code} is yours", { code })));
  });
  $("assign").addEventListener("click", () => {
    const target = $("assign-to").value || null;
    act("POST", "/assign", { assignee: target }, () => toast(target ? t("Assigned") : t("Returned to the group")));
  });
  $("connect").addEventListener("click", () => {
    startHeartbeat();
    act("POST", "/connect", undefined, () => toast(t("Connected to the session")));
  });
  $("disconnect").addEventListener("click", () => {
    stopHeartbeat();
    act("POST", "/disconnect");
  });
  $("close").addEventListener("click", () => {
    if (confirm(t("Close {code}? The customer sees that the case is closed.", { code }))) {
      stopHeartbeat();
      act("POST", "/close", undefined, () => toast(t("Closed")));
    }
  });
  $("delete")?.addEventListener("click", () => {
    if (confirm(t("Delete {code}? It disappears from the queue; its history is kept.", { code }))) {
      act("DELETE", "", undefined, () => location.assign("/console/queue"));
    }
  });
  $("chat").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("message").value.trim();
    if (!text) return;
    try {
      addMessage(await api("POST", `${path}/messages`, { body: text }));
      $("message").value = "";
    } catch (error) {
      toast(error.message, "error");
    }
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("chat").requestSubmit();
    }
  });
  // Leaving the page ends the expert's presence at once instead of after the time-out.
  window.addEventListener("pagehide", () => {
    if (connected) api("POST", `${path}/disconnect`, undefined, { keepalive: true }).catch(() => {});
  });

  follow((events) => {
    const ours = events.filter((e) => e.case_code === code);
    if (!ours.length) return;
    ours.forEach(addEvent);
    if (ours.some((e) => e.type === "case.message")) loadMessages().catch(() => {});
    if (ours.some((e) => e.type === "case.deleted")) {
      toast(t("This case was deleted."), "error");
      setTimeout(() => location.assign("/console/queue"), 1500);
      return;
    }
    refresh();
  }, $("live"));

  render(current);
  loadMessages().catch((error) => toast(error.message, "error"));
  loadTimeline().catch((error) => toast(error.message, "error"));
})();
