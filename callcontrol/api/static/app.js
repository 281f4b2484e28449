// callcontrol — what every page shares: the JSON API (same-origin cookie, CSRF header), the
// pt-BR formatters, toasts, the arrival beep and notice, and the live stream with its polling
// fallback. Data only ever reaches the page through textContent (cc.fill), never parsed as markup.
(function () {
  'use strict';

  var body = document.body;
  var cc = (window.cc = {});
  cc.domain = body.dataset.domainUuid || '';
  cc.zone = body.dataset.timezone || 'America/Sao_Paulo';
  cc.role = body.dataset.role || '';
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : '';

  cc.STATUS = {
    pending: 'Pendente', notified: 'Avisado', ready_to_call: 'Pronto para ligar',
    in_progress: 'Em ligação', completed: 'Concluído', expired: 'Expirado',
    canceled: 'Cancelado', failed: 'Falhou', needs_review: 'Em revisão'
  };

  // --- the API -------------------------------------------------------------------------------

  function ApiError(status, code, reason, body) {
    this.status = status; this.code = code || ''; this.reason = reason || ''; this.body = body || {};
  }
  cc.ApiError = ApiError;

  cc.me = function () {
    return fetch('/api/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; })
      .then(function (me) {
        if (me) {
          if (me.csrf_token) csrf = me.csrf_token;
          if (!cc.domain && me.domain_uuid) cc.domain = me.domain_uuid;
        }
        return me;
      });
  };

  cc.url = function (path, params) {
    var u = new URL(path, location.origin);
    if (cc.domain && !u.searchParams.has('domain_uuid')) u.searchParams.set('domain_uuid', cc.domain);
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v !== '' && v !== null && v !== undefined) u.searchParams.set(k, String(v));
    });
    return u.pathname + u.search;
  };

  function signedOut() {
    // once: a session that the pages accept but the API does not must not loop
    var last = Number(sessionStorage.getItem('cc-signed-out') || 0);
    if (Date.now() - last < 15000) {
      cc.toast('Sessão expirada', 'Entre de novo para continuar.', 'error');
      return;
    }
    sessionStorage.setItem('cc-signed-out', String(Date.now()));
    location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
  }

  cc.api = function (path, opts) {
    opts = opts || {};
    var method = opts.method || 'GET';
    var headers = { Accept: 'application/json' };
    var ready = Promise.resolve();
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      ready = csrf ? ready : cc.me();
    }
    return ready.then(function () {
      if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
      var init = { method: method, credentials: 'same-origin', headers: headers };
      if (method !== 'GET') init.body = JSON.stringify(opts.body || {});
      return fetch(cc.url(path, opts.params), init).catch(function () {
        throw new ApiError(0, 'network', 'Sem conexão com o servidor. Verifique a rede.');
      });
    }).then(function (reply) {
      return reply.json().catch(function () { return null; }).then(function (data) {
        if (reply.status === 401) signedOut();
        if (!reply.ok) {
          throw new ApiError(reply.status, data && data.error, data && data.reason, data);
        }
        return data;
      });
    });
  };

  // --- formatting (pt-BR, in the server's time zone) ----------------------------------------

  cc.phone = function (text) {
    var raw = String(text || '');
    var d = raw.replace(/\D/g, '');
    if (raw.charAt(0) === '+' && d.slice(0, 2) !== '55') return raw;
    if (d.slice(0, 2) === '55' && d.length >= 12) d = d.slice(2);
    if (/^0[3589]00\d{7}$/.test(d)) return d.slice(0, 4) + ' ' + d.slice(4, 7) + ' ' + d.slice(7);
    if (/^[34]00\d{5}$/.test(d)) return d.slice(0, 4) + ' ' + d.slice(4);
    if (d.length === 11 || d.length === 10) {
      return '(' + d.slice(0, 2) + ') ' + d.slice(2, d.length - 4) + '-' + d.slice(d.length - 4);
    }
    return raw;
  };

  cc.ago = function (iso, now) {
    if (!iso) return '';
    var minutes = Math.floor(((now || Date.now()) - Date.parse(iso)) / 60000);
    if (minutes < 1) return 'agora mesmo';
    if (minutes < 60) return 'há ' + minutes + ' min';
    if (minutes < 24 * 60) {
      var rest = minutes % 60;
      return 'há ' + Math.floor(minutes / 60) + ' h' + (rest ? ' ' + rest + ' min' : '');
    }
    var days = Math.floor(minutes / (24 * 60));
    return days === 1 ? 'há 1 dia' : 'há ' + days + ' dias';
  };

  var partsFormat = new Intl.DateTimeFormat('pt-BR', {
    timeZone: cc.zone, year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23'
  });
  function parts(ms) {
    var out = {};
    partsFormat.formatToParts(new Date(ms)).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }
  cc.parts = parts;

  cc.when = function (iso, empty) {
    if (!iso) return empty === undefined ? 'Assim que possível' : empty;
    var at = parts(Date.parse(iso));
    var day = at.year + at.month + at.day;
    var clock = at.hour + ':' + at.minute;
    var today = parts(Date.now());
    var tomorrow = parts(Date.now() + 86400000);
    var yesterday = parts(Date.now() - 86400000);
    if (day === today.year + today.month + today.day) return 'hoje ' + clock;
    if (day === tomorrow.year + tomorrow.month + tomorrow.day) return 'amanhã ' + clock;
    if (day === yesterday.year + yesterday.month + yesterday.day) return 'ontem ' + clock;
    return at.day + '/' + at.month + (at.year !== today.year ? '/' + at.year : '') + ' ' + clock;
  };

  cc.dateTime = function (iso) {
    if (!iso) return '—';
    var at = parts(Date.parse(iso));
    return at.day + '/' + at.month + '/' + at.year + ' ' + at.hour + ':' + at.minute;
  };

  cc.duration = function (seconds) {
    if (seconds === null || seconds === undefined) return '—';
    var s = Math.round(seconds);
    if (s < 60) return s + ' s';
    var m = Math.round(s / 60);
    if (m < 60) return m + ' min';
    var h = Math.floor(m / 60);
    return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
  };

  // Put values into [data-slot] elements of a node, as text.
  cc.fill = function (node, values) {
    Object.keys(values).forEach(function (key) {
      node.querySelectorAll('[data-slot="' + key + '"]').forEach(function (el) {
        el.textContent = values[key] === null || values[key] === undefined ? '' : String(values[key]);
      });
    });
  };

  cc.el = function (tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = String(text);
    return el;
  };

  // --- notices ------------------------------------------------------------------------------

  cc.toast = function (title, text, kind) {
    var box = document.getElementById('toasts');
    if (!box) return;
    var toast = cc.el('div', 'toast' + (kind ? ' is-' + kind : ''));
    var inner = cc.el('div');
    inner.appendChild(cc.el('strong', '', title));
    if (text) inner.appendChild(cc.el('span', '', text));
    toast.appendChild(inner);
    box.appendChild(toast);
    setTimeout(function () { toast.remove(); }, kind === 'error' ? 9000 : 6000);
  };

  // A short two-tone beep from WebAudio (no audio file). Browsers allow sound only after the
  // person has interacted with the page, so the context is made (resumed) on the first click.
  var audio = null;
  function unlockAudio() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audio) audio = new Ctx();
    if (audio.state === 'suspended') audio.resume();
  }
  document.addEventListener('pointerdown', unlockAudio, { once: true });
  document.addEventListener('keydown', unlockAudio, { once: true });

  cc.beep = function () {
    if (!audio || audio.state !== 'running') return;
    [[880, 0], [1320, 0.16]].forEach(function (tone) {
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      var t = audio.currentTime + tone[1];
      osc.type = 'sine';
      osc.frequency.value = tone[0];
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.12, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.14);
      osc.connect(gain).connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.15);
    });
  };

  cc.notify = function (title, text) {
    if (!('Notification' in window) || Notification.permission !== 'granted' || !document.hidden) return;
    try {
      var n = new Notification(title, { body: text, icon: '/static/icon.svg', tag: 'callcontrol' });
      n.onclick = function () { window.focus(); n.close(); };
    } catch (e) { /* some browsers only notify from a service worker */ }
  };

  // --- live updates: server-sent events, else polling every 15 s -----------------------------

  cc.live = function (onEvent, poll, indicator) {
    var timer = null;
    var source = null;
    function state(name, text) {
      if (!indicator) return;
      indicator.dataset.state = name;
      var label = indicator.querySelector('.live-text');
      if (label) label.textContent = text;
    }
    function startPolling() {
      if (timer) return;
      state('polling', 'Atualiza a cada 15 s');
      timer = setInterval(poll, 15000);
    }
    function stopPolling() { if (timer) { clearInterval(timer); timer = null; } }
    function handle(e) {
      var data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      if (data && typeof data === 'object') onEvent(e.type, data);
    }
    function connect() {
      if (!window.EventSource) { startPolling(); return; }
      source = new EventSource('/api/events', { withCredentials: true });
      source.onopen = function () {
        stopPolling();
        state('live', 'Ao vivo');
        poll(); // what happened while the stream was down
      };
      source.onmessage = handle;
      // api.events: "ticket" (what changed in one ticket) and "resync" (read the list again)
      ['ticket', 'resync'].forEach(function (name) {
        source.addEventListener(name, handle);
      });
      source.onerror = function () {
        startPolling();
        if (source.readyState === EventSource.CLOSED) {
          // the stream is not there (or refused): poll, and try it again in a minute
          source = null;
          setTimeout(connect, 60000);
        }
      };
    }
    connect();
    document.addEventListener('visibilitychange', function () { if (!document.hidden) poll(); });
  };

  // --- sign out with the CSRF header (the form posts without it when scripts are off) ---------

  document.querySelectorAll('.logout-form').forEach(function (form) {
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var send = csrf ? Promise.resolve() : cc.me();
      send.then(function () {
        return fetch('/logout', {
          method: 'POST', credentials: 'same-origin',
          headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: 'csrf_token=' + encodeURIComponent(csrf)
        });
      }).catch(function () { return null; }).then(function () { location.href = '/login'; });
    });
  });

  if (!csrf && cc.role) cc.me();
})();
