// The workbench's only script: files checked before they are sent, drag and drop, a progress
// bar while they upload, and the review queue's keys. Every page works without it.
(function () {
  "use strict";

  function extensionOf(name) {
    var i = name.lastIndexOf(".");
    return i < 0 ? "" : name.slice(i + 1).toLowerCase();
  }

  // What is wrong with the chosen files, or "" when nothing is.
  function problemWith(form, files) {
    var max = Number(form.dataset.maxBytes);
    var maxFiles = Number(form.dataset.maxFiles);
    var refused = (form.dataset.refused || "").split(",");
    if (files.length === 0) {
      return "请选择文件 Choose at least one file.";
    }
    if (files.length > maxFiles) {
      return "一次最多 " + maxFiles + " 个文件 At most " + maxFiles + " files at a time.";
    }
    for (var i = 0; i < files.length; i++) {
      var f = files[i];
      if (f.size > max) {
        return "“" + f.name + "” 超过 " + form.dataset.maxSize + " 的上限 is larger than the limit of " + form.dataset.maxSize + ".";
      }
      if (f.size === 0) {
        return "“" + f.name + "” 是空文件 is empty.";
      }
      if (refused.indexOf(extensionOf(f.name)) >= 0) {
        return "“" + f.name + "” 是程序或脚本，不能作为材料 is a program or a script; these are not accepted as evidence.";
      }
    }
    return "";
  }

  function showChosen(form, input) {
    var list = form.querySelector("#chosen");
    var problem = form.querySelector("#file-problem");
    list.textContent = "";
    for (var i = 0; i < input.files.length; i++) {
      var li = document.createElement("li");
      li.textContent = input.files[i].name + " (" + Math.ceil(input.files[i].size / 1024) + " KB)";
      list.appendChild(li);
    }
    var p = problemWith(form, input.files);
    problem.textContent = p;
    problem.hidden = p === "";
    return p;
  }

  function setUpUpload(form) {
    var input = form.querySelector("#file");
    var drop = form.querySelector("#drop");
    var bar = form.querySelector("#progress");
    var problem = form.querySelector("#file-problem");
    input.addEventListener("change", function () { showChosen(form, input); });
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (e) {
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        showChosen(form, input);
      }
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var p = showChosen(form, input);
      if (p) { input.focus(); return; }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      bar.hidden = false;
      bar.value = 0;
      form.querySelector("#send").disabled = true;
      xhr.upload.addEventListener("progress", function (ev) {
        if (ev.lengthComputable) { bar.value = Math.round(100 * ev.loaded / ev.total); }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 200 && xhr.responseURL && xhr.responseURL.indexOf("/work/evidence/new") < 0
            && xhr.responseURL !== form.action) {
          window.location.assign(xhr.responseURL);
          return;
        }
        // A refusal: the page the server answered with, in place of this one.
        document.open();
        document.write(xhr.responseText);
        document.close();
      });
      xhr.addEventListener("error", function () {
        form.querySelector("#send").disabled = false;
        bar.hidden = true;
        problem.textContent = "上传中断，请重试 The upload was interrupted; try again.";
        problem.hidden = false;
      });
      xhr.send(new FormData(form));
    });
  }

  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  function setUpQueue() {
    var items = Array.prototype.slice.call(document.querySelectorAll("a.queue-item"));
    if (items.length === 0) { return; }
    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) { return; }
      var at = items.indexOf(document.activeElement);
      if (e.key === "j") { items[Math.min(at + 1, items.length - 1)].focus(); e.preventDefault(); }
      if (e.key === "k") { items[Math.max(at - 1, 0)].focus(); e.preventDefault(); }
    });
  }

  function setUpReview() {
    // The document shown inline (a PDF viewer) can take the focus when it finishes loading,
    // after the reviewer has started typing a comment: the comment keeps it.
    var comment = document.querySelector("#comment");
    var shown = document.querySelector("#document");
    var lastKey = 0;
    if (comment && shown) {
      comment.addEventListener("keydown", function () { lastKey = Date.now(); });
      window.addEventListener("blur", function () {
        if (document.activeElement === shown && Date.now() - lastKey < 1000) {
          setTimeout(function () { comment.focus(); }, 0);
        }
      });
    }
    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) { return; }
      var target = { a: "#grade", r: "#comment", n: "#next" }[e.key];
      var el = target && document.querySelector(target);
      if (!el) { return; }
      e.preventDefault();
      if (e.key === "n") { el.click(); } else { el.focus(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.dataset.page;
    var form = document.getElementById("upload-form");
    if (form) { setUpUpload(form); }
    if (page === "queue") { setUpQueue(); }
    if (page === "review") { setUpReview(); }
  });
})();
