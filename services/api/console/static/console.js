// The console's only script: live fragments (server-sent events) and deadlines counting down.
// Without it every page still reads and works; it only saves reloads.
"use strict";

function words(seconds) {
  var s = Math.max(Math.floor(seconds), 0);
  var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return d + " 天" + (h ? " " + h + " 小时" : "");
  if (h) return h + " 小时" + (m ? " " + m + " 分" : "");
  if (m) return m + " 分";
  return (s % 60) + " 秒";
}

function tick() {
  var now = Date.now();
  document.querySelectorAll("[data-due]").forEach(function (el) {
    var due = Date.parse(el.getAttribute("data-due"));
    if (isNaN(due)) return;
    var late = due < now;
    el.textContent = (late ? "超时 " : "剩余 ") + words(Math.abs(due - now) / 1000);
    el.classList.toggle("late", late);
  });
}

function follow(el) {
  var status = document.querySelector("[data-live-status]");
  var source = new EventSource(el.getAttribute("data-live"));
  source.addEventListener("update", function (e) {
    // A form being filled in (an open step, a focused field) is not replaced under the user's
    // hands: the stream sends the fragment again when it reconnects.
    var active = document.activeElement;
    var typing = active && el.contains(active) && active.matches("input, textarea, select");
    if (el.querySelector("details[open]") || typing) {
      if (status) status.textContent = "有更新，完成当前操作后显示 Updates held";
      return;
    }
    el.innerHTML = e.data;
    tick();
    if (status) status.textContent = "实时 Live · 已更新 updated";
  });
  source.addEventListener("error", function () {
    if (status) status.textContent = "重新连接中 Reconnecting";
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-live]").forEach(follow);
  tick();
  setInterval(tick, 1000);
});
