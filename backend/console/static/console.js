/* SOS console: shared helpers (settings, translations, JSON API calls, change feed). */
"use strict";

const SOS = (() => {
  const read = (id) => JSON.parse(document.getElementById(id)?.textContent || "{}");
  const settings = read("sos-settings");
  const catalogue = read("sos-i18n");
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  /** Translate an English string, filling {name} placeholders. */
  function t(text, values = {}) {
    const template = catalogue[text] || text;
    return template.replace(/\{(\w+)\}/g, (_, key) => (key in values ? values[key] : `{${key}}`));
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Call the JSON API with the session cookie and the CSRF header; returns parsed JSON. */
  async function api(method, path, body, options = {}) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      keepalive: !!options.keepalive,
      signal: options.signal,
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(settings.api + path, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network", t("The server cannot be reached; retrying."));
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      if (response.status === 401) window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname));
      const error = data.error || {};
      const details = (error.details || []).map((d) => `${d.field}: ${d.message}`).join("; ");
      throw new ApiError(response.status, error.code || "error", [error.message, details].filter(Boolean).join(" — ") || response.statusText);
    }
    return data;
  }

  /** A short message at the bottom of the screen. */
  function toast(message, kind = "info") {
    const box = document.getElementById("toast");
    box.textContent = message;
    box.dataset.kind = kind;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 5000);
  }

  /** Follow the change feed by long-poll; calls onEvents(events) for each batch. */
  function follow(onEvents, liveIndicator) {
    let cursor = null;
    let delay = 1000;
    const show = (state, text) => {
      if (!liveIndicator) return;
      liveIndicator.dataset.state = state;
      liveIndicator.textContent = text;
    };
    async function loop() {
      for (;;) {
        try {
          const path = cursor === null ? "/events" : `/events?after=${cursor}&wait=25`;
          const feed = await api("GET", path);
          const first = cursor === null;
          cursor = feed.cursor;
          show("live", t("Live"));
          delay = 1000;
          if (!first && feed.events.length) onEvents(feed.events);
        } catch (error) {
          show("offline", t("Offline — retrying"));
          await new Promise((resolve) => setTimeout(resolve, delay));
          delay = Math.min(delay * 2, 15000);
        }
      }
    }
    loop();
  }

  const statusNames = {
    new: "New", pending: "Pending", in_progress: "In progress", closed: "Closed", expired: "Expired",
  };
  const statusText = (status) => t(statusNames[status] || status);

  function badge(element, status) {
    element.className = `badge status-${status}`;
    element.textContent = statusText(status);
  }

  function when(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleString(document.documentElement.lang, { dateStyle: "short", timeStyle: "short" });
  }

  function age(iso) {
    const minutes = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 60000));
    if (minutes < 1) return t("just now");
    if (minutes < 60) return t("{n} min ago", { n: minutes });
    const hours = Math.floor(minutes / 60);
    return t("{n} h ago", { n: hours });
  }

  /** Make an element with text children only (never HTML from data). */
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function availability() {
    const button = document.getElementById("availability");
    if (!button) return;
    const render = (state) => {
      button.dataset.state = state;
      button.textContent = state === "away" ? t("Away") : t("Online");
      button.title = state === "away" ? t("You are away: click to be online") : t("You are online: click to be away");
    };
    api("GET", "/me").then((me) => render(me.availability === "away" ? "away" : "online")).catch(() => {});
    button.addEventListener("click", async () => {
      const next = button.dataset.state === "away" ? "online" : "away";
      try {
        await api("PATCH", "/me", { availability: next });
        render(next);
      } catch (error) {
        toast(error.message, "error");
      }
    });
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      toast(t("Copied"));
    } catch {
      toast(text);
    }
  }

  document.addEventListener("DOMContentLoaded", availability);
  return { settings, t, api, toast, follow, badge, statusText, when, age, el, copy, ApiError };
})();
