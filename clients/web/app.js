// PlexiChat chat page: wires the DOM to the protocol client in plexichat.bundle.js.
//
// The pinned root key and the token come from the form or from the URL fragment
// (#root=<hex>&token=<jwt>&channel=<name>). The fragment never reaches a server; the page
// removes it from the address bar and history once read. Messages are shown with
// textContent only (never innerHTML), so a message body cannot inject markup.

import { PlexiChatClient, hexToBytes, bytesToHex, ROOT_PUBLIC_KEY_SIZE } from './plexichat.bundle.js';

const $ = (id) => document.getElementById(id);
let client = null;

function setStatus(text, kind) {
  const s = $('status');
  s.textContent = text;
  s.className = `status ${kind}`;
}

function showError(text) {
  const e = $('error');
  e.textContent = text;
  e.hidden = !text;
}

function logLine({ from, body, meta, kind }) {
  const li = document.createElement('li');
  if (kind) li.className = kind;
  if (meta) {
    const m = document.createElement('span');
    m.className = 'meta';
    m.textContent = meta;
    li.append(m);
  }
  if (from) {
    const f = document.createElement('span');
    f.className = 'from';
    f.textContent = `${from}:`;
    li.append(f);
  }
  li.append(document.createTextNode(body));
  $('log').append(li);
  li.scrollIntoView({ block: 'end' });
}

const hhmmss = (ts) => new Date(ts).toTimeString().slice(0, 8);

function enableChat(on) {
  for (const id of ['join', 'rekey', 'line', 'send']) $(id).disabled = !on;
  $('connect').disabled = on;
}

function readFragment() {
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.has('root')) $('root').value = frag.get('root');
  if (frag.has('token')) $('token').value = frag.get('token');
  if (frag.has('channel')) $('channel').value = frag.get('channel');
  if (frag.has('url')) $('url').value = frag.get('url');
  // Do not leave the token in the address bar or the session history.
  if (location.hash) history.replaceState(null, '', location.pathname);
  return frag.has('root') && frag.has('token') && frag.get('autoconnect') !== '0';
}

async function connect() {
  showError('');
  let root;
  try {
    root = hexToBytes($('root').value.replace(/\s+/g, ''));
    if (root.length !== ROOT_PUBLIC_KEY_SIZE) throw new Error('size');
  } catch {
    showError(`The root public key must be ${ROOT_PUBLIC_KEY_SIZE} bytes of hex.`);
    return;
  }
  const token = $('token').value.trim();
  if (!token) {
    showError('A token is needed.');
    return;
  }
  setStatus('connecting…', 'idle');
  $('connect').disabled = true;
  try {
    client = await PlexiChatClient.connect($('url').value.trim(), { rootPublicKey: root, token });
  } catch (err) {
    client = null;
    $('connect').disabled = false;
    setStatus('refused', 'bad');
    showError(`Connection refused: close code ${err.code} (${err.reason})`);
    return;
  }
  setStatus('connected', 'ok');
  $('suite').textContent = client.suite;
  $('keyid').textContent = bytesToHex(client.session.keyId);
  $('user').textContent = client.user;
  $('epoch').textContent = String(client.epoch);
  enableChat(true);
  client.onmessage = (m) => logLine({ from: m.from, body: m.body, meta: `${hhmmss(m.ts)} #${m.channel}` });
  client.onrekey = (epoch) => {
    $('epoch').textContent = String(epoch);
    logLine({ body: `keys updated: epoch ${epoch}`, kind: 'system' });
  };
  client.onclose = ({ code, reason }) => {
    enableChat(false);
    setStatus('disconnected', code === 1000 ? 'idle' : 'bad');
    if (code !== 1000) showError(`Session closed: close code ${code} (${reason})`);
    client = null;
  };
}

async function join() {
  const channel = $('channel').value.trim();
  try {
    await client.join(channel);
    logLine({ body: `joined #${channel}`, kind: 'system' });
    $('channel').dataset.joined = channel;
  } catch (err) {
    showError(`join failed: ${err.code} ${err.reason}`);
  }
}

async function sendLine(ev) {
  ev.preventDefault();
  const channel = $('channel').dataset.joined || $('channel').value.trim();
  const body = $('line').value;
  if (!client || !body) return;
  $('line').value = '';
  try {
    const ack = await client.publish(channel, body);
    logLine({ from: client.user, body, meta: `${hhmmss(ack.ts)} #${channel}`, kind: 'mine' });
  } catch (err) {
    showError(`publish failed: ${err.code} ${err.reason}`);
  }
}

function init() {
  $('url').value = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
  $('connect').addEventListener('click', connect);
  $('join').addEventListener('click', join);
  $('rekey').addEventListener('click', () => client && client.rekey());
  $('send-form').addEventListener('submit', sendLine);
  if (readFragment()) connect();
}

init();
