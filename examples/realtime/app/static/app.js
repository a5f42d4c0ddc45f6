// The page's side of a conversation: microphone to the server over WebRTC, the agent's voice
// back, and the session's events (transcripts, tool calls, latency) over the data channel.
"use strict";

const $ = (id) => document.getElementById(id);
const talk = $("talk");
const hangup = $("hangup");
let pc = null;
let channel = null;
let statsTimer = null;

function setStatus(text) {
  $("status").textContent = text;
}

// One <li> per transcript item, found again by its id as partial text is replaced.
function line(key, kind, who) {
  let li = document.querySelector(`#transcript li[data-key="${CSS.escape(key)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.key = key;
    li.className = kind;
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    const text = document.createElement("span");
    text.className = "text";
    li.append(label, text);
    $("transcript").append(li);
  }
  return li;
}

function setText(li, text) {
  li.querySelector(".text").textContent = text;
  li.scrollIntoView({ block: "end" });
}

const handlers = {
  status: (m) => setStatus(m.text),
  user: (m) => {
    const li = line(`user-${m.item_id}`, "user", "You");
    li.classList.toggle("partial", !m.final);
    setText(li, m.text);
  },
  agent_delta: (m) => {
    const li = line(`agent-${m.item_id}`, "agent", "Agent");
    const text = li.querySelector(".text");
    setText(li, text.textContent + m.delta);
  },
  agent: (m) => {
    const li = line(`agent-${m.item_id}`, "agent", "Agent");
    li.classList.toggle("interrupted", m.status === "incomplete");
    setText(li, m.text);
  },
  latency: (m) => {
    const li = line(`agent-${m.item_id}`, "agent", "Agent");
    let span = li.querySelector(".latency");
    if (!span) {
      span = document.createElement("span");
      span.className = "latency";
      li.append(span);
    }
    span.textContent = `answered in ${m.ms} ms`;
    $("last-latency").textContent = `${m.ms} ms`;
  },
  tool: (m) => setText(line(`tool-${m.call_id}`, "tool", "Tool"), `${m.name}(${m.arguments})`),
  tool_output: (m) => {
    const li = line(`tool-${m.call_id}`, "tool", "Tool");
    setText(li, `${li.querySelector(".text").textContent} → ${m.output}`);
  },
  interrupted: (m) => line(`agent-${m.item_id}`, "agent", "Agent").classList.add("interrupted"),
  call: (m) => {
    if (m.state === "ended") {
      setStatus(`Call ended (${m.reason}).`);
      finish();
    } else if (m.state === "answered") {
      setStatus("Connected: speak now.");
    }
  },
  error: (m) => setText(line(`error-${Date.now()}`, "error", "Error"), m.message),
};

function onMessage(event) {
  const message = JSON.parse(event.data);
  const handle = handlers[message.type];
  if (handle) handle(message);
}

// All candidates in the offer (no trickle): the server answers once, with all of its own.
// Gathering can linger on an interface that never answers: go with what we have after a while.
const ICE_GATHERING_MAX_MS = 3000;

function iceGatheringDone(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    setTimeout(resolve, ICE_GATHERING_MAX_MS);
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") resolve();
    });
  });
}

async function updateStats() {
  if (!pc) return;
  const stats = await pc.getStats();
  stats.forEach((report) => {
    if (report.kind !== "audio") return;
    if (report.type === "inbound-rtp") {
      $("rx-packets").textContent = report.packetsReceived;
      $("rx-bytes").textContent = report.bytesReceived;
      // Energy accumulates only while sound (not silence) is played out: the agent was heard.
      $("rx-energy").textContent = (report.totalAudioEnergy || 0).toFixed(4);
    } else if (report.type === "outbound-rtp") {
      $("tx-packets").textContent = report.packetsSent;
    }
  });
}

async function start() {
  talk.disabled = true;
  setStatus("Asking for the microphone…");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    pc = new RTCPeerConnection({ iceServers: [] });
    stream.getTracks().forEach((track) => pc.addTrack(track, stream));
    channel = pc.createDataChannel("events");
    channel.onmessage = onMessage;
    pc.ontrack = (event) => {
      $("agent-audio").srcObject = event.streams[0] || new MediaStream([event.track]);
    };
    pc.onconnectionstatechange = () => {
      $("connection-state").textContent = pc ? pc.connectionState : "closed";
      if (pc && pc.connectionState === "failed") {
        setStatus("The connection failed.");
        finish();
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);
    setStatus("Connecting…");
    const response = await fetch("/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    hangup.disabled = false;
    statsTimer = setInterval(updateStats, 500);
  } catch (error) {
    setStatus(`Could not start: ${error.message || error}`);
    finish();
  }
}

function finish() {
  if (statsTimer) clearInterval(statsTimer);
  statsTimer = null;
  if (pc) {
    updateStats();
    pc.getSenders().forEach((sender) => sender.track && sender.track.stop());
    pc.close();
    $("connection-state").textContent = "closed";
  }
  pc = null;
  channel = null;
  talk.disabled = false;
  hangup.disabled = true;
}

function stop() {
  if (channel && channel.readyState === "open") channel.send(JSON.stringify({ type: "hangup" }));
  setStatus("Hung up.");
  // Let the hang-up message leave before the connection goes.
  setTimeout(finish, 200);
}

talk.addEventListener("click", start);
hangup.addEventListener("click", stop);
