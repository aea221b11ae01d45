// The page as text for a model: headings, text, and each interactive
// element on a line of its own with a ref. Refs continue from `start`
// (the tab's counter), so a ref of an older snapshot never names an
// element of a newer page. Called with (start, maxChars).
(function (start, maxChars) {
  let next = start;
  const out = [];
  let size = 0;
  let cut = false;
  const push = (line) => {
    if (cut) return;
    if (size + line.length + 1 > maxChars) { cut = true; return; }
    out.push(line);
    size += line.length + 1;
  };
  const interactive = (el) => {
    const t = el.tagName;
    if (t === 'A' && el.hasAttribute('href')) return true;
    if (t === 'BUTTON' || t === 'SELECT' || t === 'TEXTAREA' || t === 'SUMMARY') return true;
    if (t === 'INPUT') return el.type !== 'hidden';
    const role = el.getAttribute('role');
    if (role && /^(button|link|checkbox|radio|tab|menuitem|switch|textbox|combobox|option)$/.test(role)) return true;
    return el.isContentEditable && el.parentElement && !el.parentElement.isContentEditable;
  };
  const visible = (el) => {
    const s = getComputedStyle(el);
    if (s.display === 'none' || s.visibility === 'hidden') return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 || r.height > 0 || el.tagName === 'OPTION';
  };
  const q = (s) => JSON.stringify(s.replace(/\s+/g, ' ').trim().slice(0, 120));
  const describe = (el) => {
    const t = el.tagName.toLowerCase();
    const label = el.getAttribute('aria-label') || (el.labels && el.labels[0] && el.labels[0].innerText) || '';
    if (t === 'input' || t === 'textarea' || t === 'select') {
      const parts = [t];
      if (el.type && t === 'input') parts.push('type=' + el.type);
      if (el.name) parts.push('name=' + JSON.stringify(el.name));
      if (label) parts.push('label=' + q(label));
      if (el.placeholder) parts.push('placeholder=' + q(el.placeholder));
      if (el.type === 'checkbox' || el.type === 'radio') parts.push(el.checked ? 'checked' : 'unchecked');
      else if (el.type !== 'password' && el.value) parts.push('value=' + q(String(el.value)));
      if (t === 'select') parts.push('options=' + q(Array.from(el.options).map((o) => o.text).join(' | ')));
      return parts.join(' ');
    }
    const text = el.innerText || el.value || label || el.title || '';
    if (t === 'a') return 'link ' + q(text) + ' -> ' + JSON.stringify(el.getAttribute('href').slice(0, 200));
    return (el.getAttribute('role') || t) + ' ' + q(text);
  };
  const walk = (node, depth) => {
    if (cut || depth > 60) return;
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        const s = child.textContent.replace(/\s+/g, ' ').trim();
        if (s && child.parentElement && !interactive(child.parentElement) && visible(child.parentElement)) push(s);
        continue;
      }
      if (child.nodeType !== Node.ELEMENT_NODE) continue;
      const el = child;
      if (/^(SCRIPT|STYLE|NOSCRIPT|TEMPLATE|SVG)$/.test(el.tagName)) continue;
      if (!visible(el)) continue;
      if (/^H[1-6]$/.test(el.tagName)) { push('#'.repeat(+el.tagName[1]) + ' ' + el.innerText.replace(/\s+/g, ' ').trim()); continue; }
      if (interactive(el)) {
        const ref = next++;
        el.setAttribute('data-oi-ref', String(ref));
        push('[' + ref + '] ' + describe(el));
        if (el.tagName === 'A' || el.tagName === 'BUTTON' || el.tagName === 'SELECT' || el.tagName === 'TEXTAREA') continue;
      }
      walk(el, depth + 1);
    }
  };
  for (const old of document.querySelectorAll('[data-oi-ref]')) old.removeAttribute('data-oi-ref');
  if (document.body) walk(document.body, 0);
  return { text: out.join('\n'), next: next, cut: cut, title: document.title, url: location.href };
})
