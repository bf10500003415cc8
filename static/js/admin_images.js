// Product images in the admin (templates/admin/catalog/_upload.html). With a bucket (data-mode="s3"):
// ask the app for a presigned POST, post the file straight to S3, then report the key so the app checks
// (HEAD) and records it: progress on the page, no reload until it is recorded. Without this script the same form
// is a presigned POST of its own (S3 redirects back to the app); without a bucket it posts to the app itself.
(function () {
  "use strict";
  var form = document.getElementById("image-upload");
  if (!form || form.dataset.mode !== "s3") return;
  var status = document.getElementById("image-status");
  var csrf = form.dataset.csrf;  // not a field: the form posts to S3, which must not receive our token

  function say(text) { status.textContent = text; }

  function post(url, data) {
    return fetch(url, { method: "POST", body: data, headers: { "x-csrftoken": csrf }, credentials: "same-origin" });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = form.querySelector('input[type="file"]').files[0];
    if (!file) { say(form.dataset.msgChoose); return; }
    var ask = new FormData();
    ask.append("content_type", file.type);
    say(form.dataset.msgWorking);
    post(form.dataset.presign, ask)
      .then(function (answer) { return answer.json().then(function (body) { return [answer.ok, body]; }); })
      .then(function (result) {
        if (!result[0]) throw new Error(result[1].error);
        var signed = result[1];
        if (file.size > signed.max_bytes) throw new Error(form.dataset.msgTooBig);
        var upload = new FormData();
        Object.keys(signed.fields).forEach(function (name) { upload.append(name, signed.fields[name]); });
        upload.append("file", file);
        return fetch(signed.url, { method: "POST", body: upload }).then(function (answer) {
          if (!answer.ok) throw new Error(form.dataset.msgRefused);
          var report = new FormData();
          report.append("key", signed.key);
          report.append("_csrf_token", csrf);
          return post(form.dataset.record, report);
        });
      })
      .then(function (answer) {
        if (!answer.ok) return answer.text().then(function () { throw new Error(form.dataset.msgFailed); });
        window.location.assign(answer.url || window.location.href);
      })
      .catch(function (error) { say(error.message); });
  });
})();
