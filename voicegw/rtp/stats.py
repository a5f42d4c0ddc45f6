"""Per-stream RTP bookkeeping for RTCP reports (RFC 3550 section 6.4 and appendix A).

Pure objects in the shape of aiortc's `StreamStatistics`, but with the arrival time passed
in (never read from a clock) so tests can hand-compute loss and jitter.
"""

from __future__ import annotations

from aiortc.rtp import RtcpReceiverInfo, RtcpSenderInfo, clamp_packets_lost

from voicegw.audio.timing import SEQ_MODULUS, TS_MODULUS, InterarrivalJitter, unwrap

NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point) of a Unix time."""
    return int((unix_time + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR/DLSR format (16.16 fixed point)."""
    return (ntp >> 16) & 0xFFFF_FFFF


class ReceiverStatistics:
    """What we received from one remote SSRC: loss, extended sequence, interarrival jitter."""

    def __init__(self, clock_rate: int) -> None:
        self.packets_received = 0
        self.base_seq: int | None = None
        self.extended_highest_sequence = 0
        """The highest sequence number received, with its wrap-arounds counted (RFC 3550 A.1)."""
        self._jitter = InterarrivalJitter(clock_rate)
        self._expected_prior = 0
        self._received_prior = 0
        self._last_sr: int = 0
        self._last_sr_at: float | None = None

    def add(self, sequence_number: int, timestamp: int, arrival: float, *, jitter: bool = True) -> None:
        """Count one packet. `jitter=False` for packets whose timestamp does not follow the
        media clock (RFC 4733 events keep their start timestamp while time goes on)."""
        self.packets_received += 1
        if self.base_seq is None:
            self.base_seq = self.extended_highest_sequence = sequence_number
        else:
            extended = unwrap(sequence_number, self.extended_highest_sequence, SEQ_MODULUS)
            self.extended_highest_sequence = max(self.extended_highest_sequence, extended)
        if jitter:
            self._jitter.add(timestamp, arrival)

    @property
    def packets_expected(self) -> int:
        return 0 if self.base_seq is None else self.extended_highest_sequence - self.base_seq + 1

    @property
    def packets_lost(self) -> int:
        """Cumulative loss (negative when duplicates outnumber losses, as RFC 3550 allows)."""
        return self.packets_expected - self.packets_received

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units, as an RR block carries it."""
        return int(self._jitter.value)

    @property
    def jitter_ms(self) -> float:
        return self._jitter.ms

    def sender_report_received(self, ntp: int, now: float) -> None:
        """Remember the far end's last SR, for the LSR/DLSR fields of our next report."""
        self._last_sr = ntp_middle(ntp)
        self._last_sr_at = now

    def report_block(self, ssrc: int, now: float) -> RtcpReceiverInfo:
        """The RR report block about `ssrc`; starts a new fraction-lost interval (A.3)."""
        expected = self.packets_expected
        expected_interval = expected - self._expected_prior
        received_interval = self.packets_received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.packets_received
        lost_interval = expected_interval - received_interval
        fraction = (
            0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        )
        # The SR's arrival is read from time.monotonic(), `now` often from uvloop's loop.time(),
        # the same clock cached at each loop turn and cut to the millisecond: it can be a little
        # behind. Both fields are unsigned 32 bits on the wire.
        dlsr = 0 if self._last_sr_at is None else int((now - self._last_sr_at) * 65536)
        return RtcpReceiverInfo(
            ssrc=ssrc,
            fraction_lost=fraction,
            packets_lost=clamp_packets_lost(self.packets_lost),
            highest_sequence=self.extended_highest_sequence & 0xFFFF_FFFF,
            jitter=min(self.jitter, 0xFFFF_FFFF),
            lsr=self._last_sr,
            dlsr=min(max(dlsr, 0), 0xFFFF_FFFF),
        )


class SenderStatistics:
    """What we sent, for SR sender info, plus what the far end reported back about it."""

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self.packets_sent = 0
        self.octets_sent = 0
        self._last_timestamp: int | None = None
        self._last_sent_at = 0.0
        self.remote_fraction_lost = 0
        self.remote_packets_lost = 0
        self.remote_jitter = 0
        self.rtt: float | None = None

    def add(self, timestamp: int, payload_length: int, now: float) -> None:
        """Count one sent packet (octets are payload octets, RFC 3550 6.4.1)."""
        self.packets_sent += 1
        self.octets_sent += payload_length
        self._last_timestamp = timestamp
        self._last_sent_at = now

    def sender_info(self, now: float, unix_offset: float) -> RtcpSenderInfo:
        """SR sender info for `now`; `unix_offset` turns `now` into Unix time."""
        rtp_now = 0
        if self._last_timestamp is not None:
            # The RTP timestamp that corresponds to the NTP instant of this report.
            elapsed = round((now - self._last_sent_at) * self._clock_rate)
            rtp_now = (self._last_timestamp + elapsed) % TS_MODULUS
        return RtcpSenderInfo(
            ntp_timestamp=ntp_timestamp(now + unix_offset),
            rtp_timestamp=rtp_now,
            packet_count=self.packets_sent & 0xFFFF_FFFF,
            octet_count=self.octets_sent & 0xFFFF_FFFF,
        )

    def report_received(self, block: RtcpReceiverInfo, now: float, unix_offset: float) -> None:
        """Record the far end's report block about our stream; computes RTT from LSR/DLSR."""
        self.remote_fraction_lost = block.fraction_lost
        self.remote_packets_lost = block.packets_lost
        self.remote_jitter = block.jitter
        if block.lsr:
            now_mid = ntp_middle(ntp_timestamp(now + unix_offset))
            rtt = (now_mid - block.lsr - block.dlsr) % TS_MODULUS
            # A "negative" RTT (clock skew, bogus report) shows up as a huge value: ignore it.
            if rtt < TS_MODULUS // 2:
                self.rtt = rtt / 65536
