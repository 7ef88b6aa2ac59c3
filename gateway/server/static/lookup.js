// The look-up page's checks before sending, with the server's own messages (read from
// the form's data attribute); the server checks everything again. Without this file the
// form still works: the server answers with the same messages beside each field.
"use strict";
(function () {
  function show(field, message) {
    var error = document.getElementById("err-" + field.name);
    error.textContent = "";
    if (message) {
      error.appendChild(document.createTextNode(message[0] + " "));
      var en = document.createElement("span");
      en.lang = "en";
      en.textContent = message[1];
      error.appendChild(en);
      field.setAttribute("aria-invalid", "true");
    } else {
      field.removeAttribute("aria-invalid");
    }
  }

  function problems(form, messages) {
    var code = form.elements.case_code.value.trim();
    var digits = form.elements.phone_last4.value.trim();
    var email = form.elements.email.value.trim();
    var found = {case_code: null, phone_last4: null, email: null};
    if (!code) { found.case_code = messages.required_code; }
    if (digits && email) {
      found.email = messages.one_of;
    } else if (!digits && !email) {
      found.phone_last4 = messages.required_contact;
    } else if (digits && !/^[0-9]{4}$/.test(digits)) {
      found.phone_last4 = messages.four_digits;
    }
    return found;
  }

  function setUpForm(form) {
    var messages = JSON.parse(form.dataset.messages);
    form.addEventListener("submit", function (event) {
      var found = problems(form, messages);
      var bad = [];
      Object.keys(found).forEach(function (name) {
        show(form.elements[name], found[name]);
        if (found[name]) { bad.push(form.elements[name]); }
      });
      if (bad.length) {
        event.preventDefault();
        bad[0].focus();
        return;
      }
      document.getElementById("send").disabled = true; // one click, one try of the limit
    });
    var summary = document.getElementById("summary");
    if (summary && !summary.hidden) { summary.focus(); }
  }

  var form = document.getElementById("lookup");
  if (form) { setUpForm(form); }
  var done = document.getElementById("done");
  if (done) { done.focus(); }
})();
