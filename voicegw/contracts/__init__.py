"""The two seams every layer meets at, on the ground floor beside `voicegw.audio`.

`transport` holds `AudioTransport` with its frames and call events (what a SIP call, a Twilio
stream or a WAV pair gives an agent); `model` holds `RealtimeModel` with its commands and events
(what OpenAI Realtime or the embedded cascade gives it). `sip`, `transports`, `models` and
`realtime` all import them from here, so no layer has to import the one above it to get a type.
This package imports nothing of voicegw except `voicegw.audio`.
"""
