#!/usr/bin/env python3
"""Generate trunkline's labelled AMD evaluation corpus (called by scripts/amd-corpus.sh).

Speech comes from espeak-ng (voices, variants, speeds and pitches varied), resampling from sox;
tones, noise, music beds, mixing and impairments are synthesised here with a fixed seed, so the
same command always produces the same corpus. Standard library only.

Every base clip is written three times:
  clean     8 kHz 16-bit PCM, peak level -12..-3 dBFS
  g711      the same through G.711 (alternating u-law and A-law, via sox)
  impaired  noise at 25, 15 or 10 dB SNR (white, pink or brown), peak level -30..-6 dBFS,
            G.711, then 1-5 % of 20 ms frames lost (zeroed, as a receiver without PLC plays them)

labels.csv: file,class,beep_onset_ms,first_utterance_end_ms,category,beep_end_ms,variant
  class is human | machine | fax | silence; beep_onset_ms is the onset of the beep a message
  must follow (for message-count beeps, the final long tone); first_utterance_end_ms is set
  for humans.
"""

import array
import math
import os
import random
import subprocess
import sys
import tempfile
import wave

SR = 8000
FRAME = 160

VOICES = [
    "en-us", "en-gb", "en-gb-scotland", "en-us-nyc", "en-029", "en-gb-x-rp", "en-gb-x-gbclan",
]
VARIANTS = [
    "", "+f1", "+f2", "+f3", "+f4", "+f5", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7",
    "+Annie", "+Andy", "+Alicia", "+Belinda", "+Denis", "+Linda", "+Michael", "+Steph",
    "+Zac", "+grandpa", "+klatt", "+Mr_Serious", "+Gene", "+Edward",
]
OTHER_LANG = [("es", "Hola?"), ("fr-fr", "Allô?"), ("de", "Hallo?"), ("it", "Pronto?"),
              ("pt", "Alô?"), ("nl", "Hallo, met Jan.")]

NAMES = ["John", "Mary Johnson", "David", "Sarah", "Michael Brown", "Priya", "Carlos",
         "Emma Wilson", "Ahmed", "Laura", "Kevin", "Olivia Martinez", "Tom", "Grace"]
COMPANIES = ["Acme Plumbing", "Riverside Dental", "the law office of Smith and Jones",
             "Green Valley Insurance", "Blue Sky Travel", "Northside Auto Repair"]

HUMAN_SHORT = ["Hello?", "Hello.", "Hi.", "Yeah?", "Yes?", "Hi there.", "Hello, yes?",
               "Good morning.", "Speaking.", "Hey.", "Hello, who is this?", "Yes, hello?"]
HUMAN_LONG = ["Hello, this is {n} speaking.", "Hi, {n} here, who's calling?",
              "Good afternoon, {n} speaking, how can I help?",
              "Hello, thank you for calling back.", "Hello? Yes, this is {n}.",
              "Hi, you got {n}, what's up?"]
PERSONAL = [
    "Hi, you've reached {n}. I can't take your call right now. Please leave a message after the tone.",
    "Hey, it's {n}. Leave me a message and I'll call you back.",
    "Hello, you have reached the voicemail of {n}. Please leave your name, number and a short message.",
    "This is {n}. Sorry I missed you. Leave a message.",
    "Hi! You've reached {n}'s phone. I'm not available, so leave a message after the beep.",
]
CARRIER = [
    "The person you are calling is not available. At the tone, please record your message. "
    "When you have finished recording, you may hang up.",
    "Your call has been forwarded to an automatic voice message system. {n} is not available. "
    "At the tone, please record your message.",
    "The number you have dialed is not available. Please leave a message after the tone.",
]
BUSINESS = [
    "Thank you for calling {c}. Our office is currently closed. Our business hours are Monday "
    "to Friday, nine to five. Please leave your name and number and we will return your call.",
    "You have reached {c}. All of our representatives are busy. Please leave a message.",
    "Thanks for calling {c}. We are unable to take your call. Leave a message after the tone.",
]
PAUSED = [
    ["Hi, this is {n}.", "I'm away from the phone.", "Leave a message."],
    ["You've reached {n}.", "Please leave a message after the tone."],
    ["Hello, you've reached {c}.", "We can't come to the phone.", "Please leave a message."],
]
FULL = [
    "The mailbox is full and cannot accept any messages at this time. Goodbye.",
    "Sorry, the voice mailbox of {n} is full. Please try again later.",
]
SHORT_MACHINE = ["Leave a message.", "Please leave a message.", "It's {n}, leave a message."]


class Gen:
    def __init__(self, seed, tmp):
        self.r = random.Random(seed)
        self.tmp = tmp
        self.n_tts = 0

    # --- speech -----------------------------------------------------------------------------
    def tts(self, text, voice=None, speed=None, pitch=None):
        r = self.r
        if voice is None:
            voice = r.choice(VOICES) + r.choice(VARIANTS)
        speed = speed or r.randint(130, 200)
        pitch = pitch if pitch is not None else r.randint(25, 75)
        self.n_tts += 1
        raw = os.path.join(self.tmp, "t%d.wav" % self.n_tts)
        out = os.path.join(self.tmp, "t%d_8k.wav" % self.n_tts)
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", raw,
                        text], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["sox", "-R", raw, "-r", str(SR), "-c", "1", "-b", "16", out], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        x = read_wav(out)
        os.remove(raw)
        os.remove(out)
        return trim(x)

    def text(self, t):
        return t.format(n=self.r.choice(NAMES), c=self.r.choice(COMPANIES))

    # --- tones ------------------------------------------------------------------------------
    def beep(self, kind):
        """Returns (samples, onset_in_clip, kind) where onset is the onset of the final tone."""
        r = self.r
        amp = 0.5
        if kind == "sine":
            f = r.uniform(350, 2500)
            return sine([f], r.uniform(0.15, 1.0), amp), 0
        if kind == "dual":
            f1 = r.uniform(400, 1200)
            f2 = f1 * r.uniform(1.25, 1.9)
            return sine([f1, min(f2, 2500)], r.uniform(0.2, 0.8), amp / 2), 0
        if kind == "square":
            f = r.uniform(400, 1100)
            n = int(r.uniform(0.2, 0.7) * SR)
            # Band-limited square: odd harmonics below 3.6 kHz.
            x = [0.0] * n
            h = 1
            while f * h < 3600:
                for i in range(n):
                    x[i] += amp * 0.8 / h * math.sin(2 * math.pi * f * h * i / SR)
                h += 2
            return fade(x), 0
        if kind == "chime":
            notes = [r.uniform(500, 1800) for _ in range(r.randint(2, 3))]
            out = []
            for f in notes:
                n = int(r.uniform(0.15, 0.3) * SR)
                tau = r.uniform(0.3, 0.8)
                out += fade([amp * math.exp(-i / SR / tau) * math.sin(2 * math.pi * f * i / SR)
                             for i in range(n)])
            return out, 0
        if kind == "counted":
            f = r.uniform(500, 1500)
            out = []
            for _ in range(r.randint(2, 4)):
                out += sine([f], 0.12, amp) + [0.0] * int(r.uniform(0.15, 0.3) * SR)
            onset = len(out)
            out += sine([r.uniform(600, 1500)], r.uniform(0.6, 1.2), amp)
            return out, onset
        raise ValueError(kind)

    # --- noise ------------------------------------------------------------------------------
    def noise(self, n, color):
        r = self.r
        out = [0.0] * n
        if color == "white":
            for i in range(n):
                out[i] = r.gauss(0, 1)
        elif color == "pink":
            b0 = b1 = b2 = 0.0
            for i in range(n):
                w = r.gauss(0, 1)
                b0 = 0.99765 * b0 + w * 0.0990460
                b1 = 0.96300 * b1 + w * 0.2965164
                b2 = 0.57000 * b2 + w * 1.0526913
                out[i] = b0 + b1 + b2 + w * 0.1848
        else:  # brown, high-passed a little so it is not all below 100 Hz
            y = 0.0
            prev = 0.0
            hp = 0.0
            for i in range(n):
                y = 0.98 * y + r.gauss(0, 1)
                hp = 0.95 * (hp + y - prev)
                prev = y
                out[i] = hp
        return out


def sine(freqs, dur, amp):
    n = int(dur * SR)
    x = [sum(amp * math.sin(2 * math.pi * f * i / SR) for f in freqs) for i in range(n)]
    return fade(x)


def fade(x, ms=5):
    k = min(len(x) // 2, int(SR * ms / 1000))
    for i in range(k):
        g = i / k
        x[i] *= g
        x[-1 - i] *= g
    return x


def silence(sec):
    return [0.0] * int(sec * SR)


def rms(x):
    return math.sqrt(sum(v * v for v in x) / max(1, len(x)))


def active_rms(x):
    """RMS over the 20 ms frames within 30 dB of the loudest frame (speech level, not pauses)."""
    frames = [x[i:i + FRAME] for i in range(0, len(x) - FRAME + 1, FRAME)]
    e = [rms(f) for f in frames]
    if not e or max(e) == 0:
        return 0.0
    top = max(e)
    act = [v for v in e if v > top * 0.03]
    return math.sqrt(sum(v * v for v in act) / len(act))


def trim(x):
    """Cuts espeak's leading and trailing silence (below -50 dB of the peak)."""
    peak = max((abs(v) for v in x), default=0)
    if peak == 0:
        return x
    thr = peak * 0.003
    a = next(i for i, v in enumerate(x) if abs(v) > thr)
    b = len(x) - next(i for i, v in enumerate(reversed(x)) if abs(v) > thr)
    return x[max(0, a - 40):min(len(x), b + 40)]


def read_wav(path):
    with wave.open(path) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        a = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        a.byteswap()
    return [v / 32768.0 for v in a]


def write_wav(path, x):
    a = array.array("h", (max(-32768, min(32767, int(round(v * 32768)))) for v in x))
    if sys.byteorder == "big":
        a.byteswap()
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(a.tobytes())


def g711(path_in, path_out, law):
    enc = "u-law" if law == "ulaw" else "a-law"
    tmp = path_out + ".g711.wav"
    subprocess.run(["sox", "-R", path_in, "-e", enc, "-b", "8", tmp], check=True)
    subprocess.run(["sox", "-R", tmp, "-e", "signed-integer", "-b", "16", path_out], check=True)
    os.remove(tmp)


def mix_at(base, x, at, gain=1.0):
    end = at + len(x)
    if end > len(base):
        base.extend([0.0] * (end - len(base)))
    for i, v in enumerate(x):
        base[at + i] += gain * v


class Clip:
    def __init__(self, cls, category):
        self.cls = cls
        self.category = category
        self.x = []
        self.beep_onset = None
        self.beep_end = None
        self.utt_end = None
        self.speech_rms = None

    def add(self, x):
        self.x.extend(x)
        return len(self.x)

    def ms(self, n):
        return int(round(n * 1000 / SR))


# --- categories --------------------------------------------------------------------------------

def speech_level(g, x):
    """Normalises a TTS clip to a common active level."""
    a = active_rms(x)
    return [v * 0.12 / a for v in x] if a > 0 else x


def human(g, category):
    r = g.r
    c = Clip("human", category)
    c.add(silence(r.uniform(0.2, 0.8)))
    if category == "human_late":
        c.add(silence(r.uniform(1.0, 3.0)))
    if category == "human_ringback":
        kind = r.choice(["us", "uk", "eu"])
        if kind == "us":
            c.add(sine([440, 480], 2.0, 0.2))
        elif kind == "uk":
            c.add(sine([400, 450], 0.4, 0.2) + silence(0.2) + sine([400, 450], 0.4, 0.2))
        else:
            c.add(sine([425], 1.0, 0.3))
        c.add(silence(r.uniform(0.3, 1.5)))
    if category == "human_long":
        text = g.text(r.choice(HUMAN_LONG))
        s = speech_level(g, g.tts(text, speed=r.randint(150, 200)))
    elif category == "human_other_language":
        voice, text = r.choice(OTHER_LANG)
        s = speech_level(g, g.tts(text, voice=voice + r.choice(VARIANTS)))
    else:
        s = speech_level(g, g.tts(r.choice(HUMAN_SHORT)))
    c.utt_end = c.add(s)
    if category == "human_repeat":
        c.add(silence(r.uniform(1.2, 2.2)))
        c.add(speech_level(g, g.tts(r.choice(["Hello?", "Hello? Anyone there?", "Hello-o?"]))))
    c.add(silence(r.uniform(3.0, 4.5)))
    if category == "human_noise":
        c.noise_snr = r.choice([15, 10])
    if category == "human_babble":
        # A person in a busy room: three other talkers, 12-20 dB under the person, from
        # before the answer to the end.
        room = [0.0] * len(c.x)
        for _ in range(3):
            talk = []
            voice = r.choice(VOICES) + r.choice(VARIANTS)
            while len(talk) < len(room):
                text = g.text(r.choice(PERSONAL + BUSINESS + HUMAN_LONG + HUMAN_SHORT))
                talk += speech_level(g, g.tts(text, voice=voice)) + silence(r.uniform(0.1, 0.6))
            start = r.randrange(len(talk) - len(room) + 1)
            mix_at(room, talk[start:start + len(room)], 0, 1.0)
        level = 10 ** (-r.uniform(12, 20) / 20) * active_rms(s) / max(active_rms(room), 1e-9)
        mix_at(c.x, room, 0, level)
    return c


BEEP_KINDS = ["sine", "dual", "square", "chime", "counted"]


def machine(g, category):
    r = g.r
    c = Clip("machine", category)
    c.add(silence(r.uniform(0.1, 0.6)))
    beep = True
    gap = r.uniform(0.1, 0.8)
    beep_gain = 1.0
    beep_kind = r.choice(BEEP_KINDS)
    if category == "machine_personal":
        s = g.tts(g.text(r.choice(PERSONAL)))
    elif category == "machine_carrier":
        s = g.tts(g.text(r.choice(CARRIER)), voice=r.choice(["en-us", "en-gb"]) + r.choice(["+f2", "+f4", "", "+Linda"]))
    elif category == "machine_business":
        s = g.tts(g.text(r.choice(BUSINESS)))
    elif category == "machine_pauses":
        voice = r.choice(VOICES) + r.choice(VARIANTS)
        s = []
        parts = r.choice(PAUSED)
        for i, t in enumerate(parts):
            s += g.tts(g.text(t), voice=voice, speed=150)
            if i + 1 < len(parts):
                s += silence(r.uniform(0.3, 0.7))
    elif category == "machine_no_beep":
        s = g.tts(g.text(r.choice(PERSONAL + BUSINESS)))
        beep = False
    elif category == "machine_mailbox_full":
        s = g.tts(g.text(r.choice(FULL)))
        beep = False
    elif category == "machine_music":
        s = g.tts(g.text(r.choice(PERSONAL + BUSINESS)))
    elif category == "machine_interrupted":
        s = g.tts(g.text(r.choice(PERSONAL + BUSINESS)))
        s = s[: int(len(s) * r.uniform(0.5, 0.8))]
        s = fade(s, 10)
        gap = r.uniform(0.0, 0.3)
    elif category == "machine_short":
        s = g.tts(g.text(r.choice(SHORT_MACHINE)))
        gap = r.uniform(0.1, 0.4)
    elif category == "machine_quiet_beep":
        s = g.tts(g.text(r.choice(PERSONAL)))
        beep_gain = 10 ** (-r.uniform(12, 18) / 20)
        beep_kind = r.choice(["sine", "dual", "square"])
    elif category == "machine_beep_after_speech":
        s = g.tts(g.text(r.choice(PERSONAL + CARRIER)))
        gap = r.uniform(0.0, 0.05)
    elif category == "machine_beep_after_pause":
        s = g.tts(g.text(r.choice(PERSONAL + CARRIER)))
        gap = r.uniform(0.8, 1.3)
    else:
        raise ValueError(category)
    s = speech_level(g, s)
    start = len(c.x)
    c.add(s)
    if category == "machine_music":
        bed = music(g, len(s) + int(0.4 * SR))
        mix_at(c.x, bed, max(0, start - int(0.3 * SR)), 10 ** (-r.uniform(8, 14) / 20))
    if beep:
        c.add(silence(gap))
        tone, onset = g.beep(beep_kind)
        # Beeps are as loud as the speech's peaks, less for quiet ones.
        tone = [v * 0.6 * beep_gain for v in tone]
        at = len(c.x)
        c.beep_onset = at + onset
        c.beep_end = at + len(tone)
        c.add(tone)
        c.beep_kind = beep_kind
    c.add(silence(r.uniform(2.5, 4.0)))
    return c


def music(g, n):
    """A music bed: chords of three harmonic-rich notes changing every 300-500 ms."""
    r = g.r
    out = []
    root_choices = [196.0, 220.0, 246.9, 261.6, 293.7, 329.6]
    while len(out) < n:
        root = r.choice(root_choices)
        chord = [root, root * r.choice([1.25, 1.2]), root * 1.5]
        dur = int(r.uniform(0.3, 0.5) * SR)
        seg = [0.0] * dur
        for f in chord:
            for h, a in ((1, 1.0), (2, 0.5), (3, 0.3), (4, 0.15)):
                w = 2 * math.pi * f * h / SR
                for i in range(dur):
                    seg[i] += 0.1 * a * math.sin(w * i)
        out += fade(seg, 10)
    return out[:n]


def fax(g, category):
    r = g.r
    c = Clip("fax", category)
    c.add(silence(r.uniform(0.2, 1.0)))
    if category == "fax_cng":
        for _ in range(3):
            c.add(sine([1100], 0.5, 0.3))
            c.add(silence(3.0))
    elif category == "fax_ced":
        c.add(sine([2100], r.uniform(2.6, 3.5), 0.3))
        c.add(silence(0.075))
        # V.21 preamble flags: alternating 1650 / 1850 Hz.
        for _ in range(40):
            c.add(sine([r.choice([1650, 1850])], 0.0266, 0.3))
        c.add(silence(2.0))
    else:  # ANSam: 2100 Hz, 15 Hz AM at 20 %, phase reversal every 450 ms
        n = int(r.uniform(2.6, 3.3) * SR)
        ph = 0.0
        x = []
        for i in range(n):
            if i % int(0.45 * SR) == 0 and i:
                ph += math.pi
            a = 0.3 * (1 + 0.2 * math.sin(2 * math.pi * 15 * i / SR))
            x.append(a * math.sin(2 * math.pi * 2100 * i / SR + ph))
        c.add(fade(x))
        c.add(silence(2.0))
    return c


def dead(g, category):
    r = g.r
    c = Clip("silence", category)
    n = int(r.uniform(6, 8) * SR)
    if category == "silence_digital":
        c.add([0.0] * n)
    elif category == "silence_comfort_noise":
        lvl = 10 ** (r.uniform(-60, -45) / 20)
        c.add([v * lvl for v in g.noise(n, r.choice(["white", "pink"]))])
    elif category == "silence_hum":
        f = r.choice([50.0, 60.0])
        lvl = 10 ** (r.uniform(-40, -28) / 20)
        hs = [(1, 1.0), (3, 0.4), (5, 0.25), (7, 0.1)]
        x = [lvl * sum(a * math.sin(2 * math.pi * f * h * i / SR) for h, a in hs)
             for i in range(n)]
        nz = g.noise(n, "white")
        c.add([v + 0.0005 * w for v, w in zip(x, nz)])
    else:  # clicks in low noise
        nz = g.noise(n, "white")
        x = [0.0003 * v for v in nz]
        i = int(r.uniform(0.2, 0.6) * SR)
        while i < n - 40:
            amp = r.uniform(0.05, 0.5) * r.choice([-1, 1])
            for k in range(r.randint(1, 24)):
                x[i + k] += amp * math.exp(-k / 5)
            i += int(r.uniform(0.25, 1.2) * SR)
        c.add(x)
    return c


HUMAN_CATS = ["human_short", "human_long", "human_repeat", "human_late", "human_ringback",
              "human_noise", "human_other_language"]
# Only with --babble (a harder set, reported apart in BENCHMARKS.md): drawn after every
# other category, so that the clips above are the same with or without it.
BABBLE_CATS = ["human_babble"]
MACHINE_CATS = ["machine_personal", "machine_carrier", "machine_business", "machine_pauses",
                "machine_no_beep", "machine_mailbox_full", "machine_music", "machine_interrupted",
                "machine_short", "machine_quiet_beep", "machine_beep_after_speech",
                "machine_beep_after_pause"]
FAX_CATS = ["fax_cng", "fax_ced", "fax_ansam"]
SILENCE_CATS = ["silence_digital", "silence_comfort_noise", "silence_hum", "silence_clicks"]


def render(g, c, variant, path, tmpdir, index):
    r = g.r
    x = list(c.x)
    peak = max((abs(v) for v in x), default=0.0)
    if variant == "impaired":
        level_db = r.uniform(-30, -6)
    else:
        level_db = r.uniform(-12, -3)
    if peak > 0:
        gain = 10 ** (level_db / 20) / peak
        x = [v * gain for v in x]
    snr = getattr(c, "noise_snr", None)
    if variant == "impaired" and c.cls != "silence":
        snr = r.choice([25, 15, 10]) if snr is None else snr
    if snr is not None and c.cls != "silence":
        sig = active_rms(x)
        nz = g.noise(len(x), r.choice(["white", "pink", "brown"]))
        k = sig / max(rms(nz), 1e-12) * 10 ** (-snr / 20)
        x = [v + k * w for v, w in zip(x, nz)]
    if variant == "clean":
        write_wav(path, x)
        return snr, 0.0
    tmp = os.path.join(tmpdir, "pre%d.wav" % index)
    write_wav(tmp, x)
    g711(tmp, path, "ulaw" if index % 2 == 0 else "alaw")
    os.remove(tmp)
    lost = 0.0
    if variant == "impaired":
        # Packets are lost after encoding: the receiver plays silence for a lost 20 ms frame.
        lost = r.uniform(0.01, 0.05)
        x = read_wav(path)
        for f in range(len(x) // FRAME):
            if r.random() < lost:
                x[f * FRAME:(f + 1) * FRAME] = [0.0] * FRAME
        write_wav(path, x)
    return snr, lost


def main():
    out = sys.argv[1]
    small = "--small" in sys.argv[2:]
    babble = "--babble" in sys.argv[2:]
    per_cat = 1 if small else 12
    seed = 20261121
    if "--seed" in sys.argv[2:]:
        seed = int(sys.argv[sys.argv.index("--seed") + 1])
    os.makedirs(out, exist_ok=True)
    g = Gen(seed, tempfile.mkdtemp(prefix="amdcorpus"))
    plan = ([(human, c) for c in HUMAN_CATS] + [(machine, c) for c in MACHINE_CATS]
            + [(fax, c) for c in FAX_CATS] + [(dead, c) for c in SILENCE_CATS]
            + [(human, c) for c in (BABBLE_CATS if babble else [])])
    variants = ["clean", "impaired"] if small else ["clean", "g711", "impaired"]
    rows = []
    index = 0
    for fn, cat in plan:
        n = per_cat if fn in (human, machine) else max(1, per_cat // 2)
        for k in range(n):
            c = fn(g, cat)
            for variant in variants:
                name = "%s_%02d_%s.wav" % (cat, k, variant)
                render(g, c, variant, os.path.join(out, name), g.tmp, index)
                index += 1
                rows.append([name, c.cls,
                             "" if c.beep_onset is None else str(c.ms(c.beep_onset)),
                             "" if c.utt_end is None else str(c.ms(c.utt_end)),
                             cat,
                             "" if c.beep_end is None else str(c.ms(c.beep_end)),
                             variant])
        sys.stderr.write("%s: %d clips\n" % (cat, n))
    with open(os.path.join(out, "labels.csv"), "w") as f:
        f.write("file,class,beep_onset_ms,first_utterance_end_ms,category,beep_end_ms,variant\n")
        for row in rows:
            f.write(",".join(row) + "\n")
    os.rmdir(g.tmp)
    sys.stderr.write("%d files in %s\n" % (len(rows), out))


if __name__ == "__main__":
    main()
