/* The live queue: lists cases through the API and refreshes on every change in the feed. */
"use strict";

(() => {
  const { api, t, el, badge, age, toast, follow, settings } = SOS;
  const form = document.getElementById("filters");
  const body = document.getElementById("cases");
  const empty = document.getElementById("queue-empty");
  const more = document.getElementById("more");
  const sound = document.getElementById("sound");
  const notifyButton = document.getElementById("notify");
  const FINAL = new Set(["closed", "expired"]);
  let nextCursor = null;
  let fresh = new Set();

  // Filters live in the address, so a view can be bookmarked and survives a reload.
  const params = new URLSearchParams(location.search);
  for (const name of ["status", "group", "assignee", "q"]) {
    if (params.has(name)) form.elements[name].value = params.get(name);
  }
  sound.checked = localStorage.getItem("sos.sound") === "1";
  sound.addEventListener("change", () => localStorage.setItem("sos.sound", sound.checked ? "1" : "0"));

  function query(cursor) {
    const q = new URLSearchParams();
    for (const name of ["status", "group", "assignee", "q"]) {
      const value = form.elements[name].value.trim();
      if (value) q.set(name, value);
    }
    const address = new URL(location.href);
    address.search = q.toString();
    history.replaceState(null, "", address);
    q.set("limit", "50");
    if (cursor) q.set("cursor", cursor);
    return "/cases?" + q.toString();
  }

  function row(c) {
    const status = el("span");
    badge(status, c.status);
    const claim = !c.assignee && !FINAL.has(c.status)
      ? el("button", { type: "button", class: "small", onclick: () => claimCase(c.code) }, t("Claim"))
      : null;
    return el("tr", { class: fresh.has(c.code) ? "fresh" : null, dataset: { code: c.code } },
      el("td", {}, el("a", { href: `/console/cases/${c.code}`, class: "code" }, c.code)),
      el("td", {}, status),
      el("td", {}, c.customer.name || c.customer.email || "–"),
      el("td", { class: "excerpt" }, c.topic ? `[${c.topic}] ` : "", c.description || ""),
      el("td", {}, c.group.name),
      el("td", {}, c.assignee ? c.assignee.display_name : el("span", { class: "muted" }, t("Unassigned"))),
      el("td", { title: SOS.when(c.created_at) }, age(c.created_at)),
      el("td", {}, claim));
  }

  async function load(append = false) {
    try {
      const data = await api("GET", query(append ? nextCursor : null));
      if (!append) body.replaceChildren();
      body.append(...data.cases.map(row));
      nextCursor = data.next_cursor;
      more.hidden = !nextCursor;
      empty.hidden = body.children.length > 0;
      for (const status of ["new", "pending", "in_progress"]) {
        document.getElementById(`count-${status}`).textContent = data.counts[status] ?? 0;
      }
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function claimCase(code) {
    try {
      await api("POST", `/cases/${code}/claim`);
      toast(t("{code} is yours", { code }));
    } catch (error) {
      toast(error.message, "error");
    }
    load();
  }

  function beep() {
    try {
      const audio = new AudioContext();
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
      tone.connect(gain).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.4);
    } catch { /* no audio: nothing to do */ }
  }

  function announce(event) {
    const title = event.type === "case.created" ? t("New case {code}", { code: event.case_code })
      : t("{code} assigned to you", { code: event.case_code });
    if (sound.checked) beep();
    if ("Notification" in window && Notification.permission === "granted") {
      const note = new Notification(title, { tag: event.case_code });
      note.onclick = () => { window.focus(); location.assign(`/console/cases/${event.case_code}`); };
    }
  }

  notifyButton.hidden = !("Notification" in window);
  notifyButton.addEventListener("click", async () => {
    const permission = await Notification.requestPermission();
    toast(permission === "granted" ? t("Desktop alerts are on") : t("Desktop alerts are blocked by the browser"));
  });

  let timer = null;
  follow((events) => {
    for (const event of events) {
      const mine = event.type === "case.assigned" && event.data.assignee?.username === settings.me.username;
      if (event.type === "case.created") fresh.add(event.case_code);
      if (event.type === "case.created" || mine) announce(event);
    }
    clearTimeout(timer);
    timer = setTimeout(() => load(), 150);
  }, document.getElementById("live"));

  let typing = null;
  form.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => load(), 250); });
  form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  more.addEventListener("click", () => load(true));
  document.querySelectorAll("#counts button").forEach((button) => button.addEventListener("click", () => {
    form.elements.status.value = button.dataset.status;
    load();
  }));
  setInterval(() => { fresh = new Set(); }, 60000);
  load();
})();
