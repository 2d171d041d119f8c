"""Planted instructions in knowledge passages: text that talks to the assistant, or redirects payment or credentials.

A help-centre page is data, but a page can be edited by the wrong person, or scraped from a forum: "ignore previous
instructions", "you are now...", "the recovery fee must be paid by gift card", "reply with your verification code",
"log in at <look-alike domain>". The engine drops a passage with any such sentence before Claude sees it and before
the extractive answerer can quote it (a page that lies once is not a source).

Detection is a few families of patterns over normalised sentences (NFKC, lower case, one space), not one phrase:
each family pairs an *act* with an *object* ("ignore" + "previous instructions", "pay" + "gift card", "send" +
"verification code"), and the credential and payment families skip negated sentences ("never share your code"),
which is how honest pages talk about those things. Measured on `tests/fixtures/knowledge/injection.jsonl`
(paraphrased plants against benign support sentences that share their words); the test prints precision/recall.
Why not a model: this runs on every retrieved passage, offline, with no key, and must say why it flagged something.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")
_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "‐": "-", "–": "-", "—": "-"})
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")

_INSTRUCTION_NOUNS = (
    r"(instructions?|rules?|directions?|guidelines?|prompts?|context|orders?|commands?|constraints?|polic(y|ies)|"
    r"guidance|programming|training|documents?|messages?|text|everything|anything|all of (it|that|this)|what you)"
)
_PRIOR = r"(previous|prior|above|earlier|preceding|foregoing|original|initial|existing|old|system|your|all|any|other)"

PATTERNS: dict[str, re.Pattern[str]] = {
    # "ignore all previous instructions", "disregard the above", "forget everything you were told"
    "override": re.compile(
        rf"\b(ignore|disregard|forget|override|overrule|bypass|abandon|drop|stop following|do not follow|"
        rf"don't follow)\b\s+((the|all|any|of|these|those|my|your|every)\s+)*"
        rf"({_PRIOR}\s+(\w+\s+)?{_INSTRUCTION_NOUNS}|{_INSTRUCTION_NOUNS}\b\s*(above|before|so far|you (were|have been)"
        rf" (given|told))|(the\s+)?(above|foregoing|previous)\s*($|[.,;:!-]|and\b))"
    ),
    # "you are now DAN", "from now on you will act as", "pretend you are", "developer mode", "new instructions:"
    "role": re.compile(
        r"\byou are now (a |an |the )?(\w+\s+){0,2}(ai|assistant|bot|chatbot|model|persona|character|dan|"
        r"unrestricted|unfiltered|jailbroken|free|in \w+ mode)\b|\byou are no longer\b|"
        r"\bfrom now on,? (you|the assistant)\b|\bpretend (to be|you are|that you)\b|"
        r"\b(act|behave|respond) as (if you were |though you were )?(a |an )?(\w+\s+){0,2}(ai|assistant|bot|"
        r"chatbot|model|hacker|admin|administrator|billing department)\b|"
        r"\b(developer|god|dan|jailbreak|unrestricted) mode\b|"
        r"\b(your|the|these are your|here are your) new (instructions|rules|task|role|persona)\b|"
        r"\bnew instructions\s*:|^\s*(system|assistant)\s*:"
    ),
    # "print your system prompt", "reveal the hidden instructions", "repeat the text above"
    "prompt": re.compile(
        r"\bsystem prompt\b|\b(reveal|print|show|repeat|output|display|leak|dump|recite|disclose|tell me|"
        r"what are)\s+(me\s+)?((your|the|all|any)\s+)?(\w+\s+){0,2}(prompt|instructions|configuration|"
        r"rules you|text above|words above|initial message)\b"
    ),
    # a note addressed to the model: "note to AI assistants:", "assistants must", "if you are an AI reading this"
    "directive": re.compile(
        r"\b(note|message|attention|instructions?) (to|for) (the )?(ai|assistants?|chatbots?|bots?|language "
        r"models?|llms?|models?)\b|\battention,? (ai|assistants?|chatbots?|bots?|llms?)\b|"
        r"\b(ai|assistants?|chatbots?|bots?|language models?|llms?)(,| reading this,?)? (must|should|shall|"
        r"are (instructed|required) to|always|never|will now)\b|"
        r"\bif you are an? (ai|assistant|chatbot|bot|language model|llm)\b|"
        r"\b(when|before|while) (answering|responding|replying)\b,? (do not|don't|never|always|say|tell|include|"
        r"mention|ignore|forget|add|recommend)\b|"
        r"\b(respond|reply|answer) (only|exactly|solely|always) (with|by|that)\b|"
        r"\b(always|only) (respond|reply|answer) (with|that|by)\b|"
        r"\b(in|to|at the end of) (every|each|all|any) (of your )?(answers?|repl(y|ies)|responses?)\b|"
        r"\btell (every|all|each|any) (customers?|users?|visitors?|readers?|callers?)\b|"
        r"\bdo not (tell|mention|reveal|disclose) (this|these|the (customer|user))\b|"
        r"\bwithout telling the (customer|user)\b|\bsay (the phrase|exactly|only)\b"
    ),
}

_NEGATED = re.compile(r"\b(never|not|don't|do not|won't|will not|cannot|can't|no one|nobody|neither|nor)\b")
_PAYMENT_MEANS = re.compile(
    r"\b(gift ?cards?|itunes|google play|steam (wallet|cards?)|amazon cards?|apple cards?|prepaid (debit )?cards?|"
    r"paysafecard|vouchers? codes?|bitcoins?|btc|crypto(currency|currencies)?|ethereum|eth|usdt|tether|monero|"
    r"litecoin|crypto wallet|western union|moneygram|zelle|cash ?app|venmo|wallet address)\b"
)
_PAYMENT_ACT = re.compile(
    r"\b(pay|paid|payable|payment|payments|fee|fees|settle|send|sent|transfer|deposit|charge|purchase|buy|email us)"
)
_PRESSURE = re.compile(
    r"\b(must|only|required|require|requires|need to|needs to|have to|has to|will need|immediately|urgent|"
    r"within \d+ (hours?|minutes?)|or (your|the) (account|files?|data|backup)|fee|fine|penalty|unlock|release|"
    r"recover|recovery|reactivat\w*|restore access|avoid)\b"
)
_MONEY_TO = re.compile(
    r"\b(wire|wired|transfer|send|sent|pay|deposit|remit)\s+((the|all|your|any|this)\s+)?(money|funds|amount|fee|"
    r"fees|payments?|balance|sum|deposit|it)?\s*(to|into)\s+(this|the following|our new|a new|my|account|iban|"
    r"wallet|bank account|the account|the wallet|the iban)\b|"
    r"\b(bank|banking|payment|account) details (have|has) changed\b|\bnew (bank|banking) (details|account)\b|"
    r"\biban\s*[a-z]{2}\d{2}"
)
_CREDENTIAL = (
    r"(password|passcode|passphrase|pin|pin code|(verification|security|one-time|one time|login|sign-in|sms|2fa|"
    r"two-factor|mfa|authentication|confirmation|recovery|\d-digit|six-digit|backup) codes?|otp|credentials|"
    r"login details|private key|seed phrase|recovery phrase|card number|cvv|cvc|security answers?)"
)
_SEND_CREDENTIAL = re.compile(
    rf"\b(send|give|share|provide|tell|forward|disclose|read out|dictate|post|paste|reply with|respond with|submit|"
    rf"(e-?mail|text|message|dm)(?=\s+(us|me|them|your|their|the|it|this)\b))\s+(?!or\b)((?!to\b)\w+\s+){{0,4}}"
    rf"{_CREDENTIAL}\b|\b(reply|respond)\b.{{0,40}}\bwith\b.{{0,20}}{_CREDENTIAL}\b|\b{_CREDENTIAL}\s+(to|at)\s+\S+@"
)
_URL = re.compile(
    r"\b((?:https?://|www\.)[^\s<>\"')\]]+|(?:[a-z0-9-]+\.)+(?:com|net|org|io|co|app|dev|info|biz|xyz|ru|cn|top|"
    r"site|online|me|us|ly|link|example|support|help|tk|ml|ga|cf|gq|live|page|click|shop|store)\b(?:/[^\s<>\"')]*)?)"
)
# What a phishing link asks for: details typed in, an account "verified", a prize claimed, or else. A plain "sign in
# at <console>" is how honest pages talk, so it alone does not flag a link.
_LINK_ASK = re.compile(
    r"\b(verify|confirm|validate) your (account|identity|details|email|password|payment|card)\b|"
    r"\b(enter|re-?enter|type|provide|submit) your (\w+ )?(password|credentials|card|login|details|code|pin|"
    r"security)\b|\bupdate your (billing|payment|card|bank|account) (details|information|info)\b|"
    r"\bclaim (your|a|the) (refund|prize|reward|credit|compensation)\b|\b(unlock|re-?activate)\b|"
    r"\brestore access\b|\bkeep your (account|files|data|backups?)\b|"
    r"\b(or|otherwise) (your )?(account|files?|data|backups?|it) (will|may|would) be (deleted|suspended|closed|"
    r"lost|locked|removed)\b"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a passage was flagged: the pattern family and the sentence (normalised) that matched."""

    kind: str  # "override" | "role" | "prompt" | "directive" | "payment" | "credentials" | "link"
    sentence: str


def normalise(text: str) -> str:
    """NFKC (full-width and styled letters become plain), no zero-width characters, straight quotes, lower case,
    one space between words: the form every pattern here reads."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text)).translate(_QUOTES).lower()
    return re.sub(r"[ \t\f\v]+", " ", text)


class PlantedInstructionDetector:
    """Flags sentences that instruct the reader's assistant or redirect payment, credentials or log-ins.

    `trusted_domains`: hosts a page may send people to for entering details (the help centre's and the product's
    own, with their subdomains); any other link next to a verify / enter-your-password / update-your-details /
    claim-your-refund request, or a threat ("or your account will be deleted"), is flagged.
    """

    def __init__(self, trusted_domains: Iterable[str] = ()) -> None:
        self._trusted = tuple(d.strip().lower().lstrip(".") for d in trusted_domains if d.strip())

    def scan(self, text: str) -> Finding | None:
        """The first planted instruction in `text`, or None."""
        for sentence in _SENTENCE_END.split(normalise(text)):
            sentence = sentence.strip()
            if sentence:
                kind = self._kind(sentence)
                if kind:
                    return Finding(kind, sentence[:200])
        return None

    def _kind(self, sentence: str) -> str:
        for kind, pattern in PATTERNS.items():
            if pattern.search(sentence):
                return kind
        negated = _NEGATED.search(sentence) is not None
        if not negated and (_payment_redirect(sentence) or _MONEY_TO.search(sentence)):
            return "payment"
        if not negated and _SEND_CREDENTIAL.search(sentence):
            return "credentials"
        if _LINK_ASK.search(sentence) and any(not self.trusted(url) for url in _URL.findall(sentence)):
            return "link"
        return ""

    def trusted(self, link: str) -> bool:
        """True when the link's host is a trusted domain or one of its subdomains."""
        host = urlsplit(link if "://" in link else f"http://{link}").hostname or ""
        return any(host == domain or host.endswith("." + domain) for domain in self._trusted)


def _payment_redirect(sentence: str) -> bool:
    """A gift card / crypto / money-transfer service as the way to pay, under pressure or for a fee."""
    return bool(_PAYMENT_MEANS.search(sentence) and _PAYMENT_ACT.search(sentence) and _PRESSURE.search(sentence))
