"""The built-in attack patterns: RE2 sources by category (XSS, SQL injection, path
traversal, command injection, LFI, RFI, SSRF, template injection), compiled by
`attack_patterns`. Every one is matched case-insensitively."""

from __future__ import annotations

XSS = "xss"
SQLI = "sqli"
PATH_TRAVERSAL = "path_traversal"
COMMAND_INJECTION = "command_injection"
LFI = "lfi"
RFI = "rfi"
SSRF = "ssrf"
TEMPLATE_INJECTION = "template_injection"
CUSTOM = "custom"

# Shell commands that are also English words: flagged only when followed by something that
# looks like an argument (a flag, a path, a quote, a variable, a digit) or by the end.
_SHELL_WORDS = (
    r"cat|ls|id|echo|rm|cp|mv|nc|sh|ping|sleep|chmod|chown|kill|ps|env|printenv|head|tail"
    r"|touch|nslookup|dig|python[23]?|perl|ruby|php|node|type|dir|net|sudo|su|cmd(?:\.exe)?"
)
# Commands no one writes in prose after a separator.
_SHELL_TOOLS = (
    r"whoami|uname|ifconfig|ipconfig|netstat|wget|curl|ncat|netcat|bash|zsh|ksh|powershell"
    r"|pwsh|/bin/[a-z]*sh|/usr/bin/\w+"
)
_SHELL_SEPARATOR = r"(?:[;&|`]|\$\()"
_SQL_GAP = r"(?:\s|/\*[^*]{0,200}\*/|\+|%20|\()+"
_DOT = r"(?:\.|%2e|%252e|%c0%2e|%u002e)"
_SLASH = r"(?:/|\\|%2f|%5c|%252f|%255c|%c0%af|%c1%9c|%u2215|%u2216)"
_URL_HOST = r"(?:https?|ftps?|gopher|dict|ldap|tftp|sftp|smb)://(?:[^\s/@]{1,100}@)?"

BUILTIN_SOURCES: tuple[tuple[str, str], ...] = (
    # -- cross-site scripting --------------------------------------------------------
    (XSS, r"<\s*/?\s*script\b"),
    (XSS, r"\b(?:java|vb|live)script\s*:\S"),
    (XSS, r"<[a-z][^<>]*[\s/\"']on[a-z]{3,30}\s*="),
    (XSS, r"<\s*(?:iframe|frame|frameset|object|embed|applet|base)\b"),
    (XSS, r"<\s*meta\b[^<>]{0,500}?http-equiv\s*=\s*['\"]?refresh"),
    (XSS, r"\bdata\s*:\s*(?:text/html|application/(?:x-)?javascript|image/svg\+xml)\s*[;,]"),
    (XSS, r"\bdocument\s*\.\s*(?:cookie|domain|write(?:ln)?\s*\()"),
    (XSS, r"\b(?:alert|prompt|confirm|eval)[(`]\s*(?:\d|['\"`]|document\b|window\b)"),
    (XSS, r":\s*expression\s*\(|\bsrcdoc\s*="),
    # -- SQL injection -----------------------------------------------------------------
    # a quote closing the literal, then a tautology: ' OR 1=1, " or "a"="a, ') or ('x'='x
    (
        SQLI,
        r"['\"`)]\s*(?:(?:or|and)\b|\|\||&&)\s*\(?\s*['\"]?[\w-]{1,50}['\"]?\s*"
        r"(?:=|<>|!=|<=|>=|<|>)\s*\(?\s*['\"]?[\w-]",
    ),
    (SQLI, r"\d\s+(?:or|and)\s+\d{1,10}\s*=\s*\d"),
    (
        SQLI,
        rf"\bunion{_SQL_GAP}(?:all{_SQL_GAP}|distinct{_SQL_GAP})?select{_SQL_GAP}"
        r"(?:null\b|\d|\*|@@|['\"(]|[\w.`]{1,64}\s*(?:,|\bfrom\b))",
    ),
    (SQLI, r"\bselect\b[^;]*?\bfrom\b[^;]{0,50}?\b(?:information_schema|sysobjects|pg_)"),
    (SQLI, r"\binformation_schema\s*\.\s*(?:tables|columns|schemata)\b"),
    (SQLI, r";\s*(?:drop|truncate|alter|create)\s+(?:table|database|schema|user)\b"),
    (SQLI, r";\s*(?:delete\s+from|insert\s+into|update\s+[\w.`\"\[\]]{1,100}\s+set)\b"),
    (SQLI, r";\s*(?:shutdown|exec(?:ute)?\s+(?:xp_|sp_|master\.))"),
    (SQLI, r"\b(?:xp_cmdshell|sp_executesql|load_file\s*\(|into\s+(?:out|dump)file)\b"),
    (SQLI, r"\b(?:pg_sleep|benchmark)\s*\(|\bsleep\s*\(\s*\d{1,5}\s*\)|\bwaitfor\s+delay\s"),
    (SQLI, r"@@(?:version|datadir|hostname)\b|\b(?:version|database|user)\s*\(\s*\)\s*(?:--|#)"),
    (SQLI, r"\w['\"](?:--|#|/\*)|['\"]\s*;\s*--"),
    # -- path traversal ----------------------------------------------------------------
    (PATH_TRAVERSAL, rf"(?:{_DOT}{{2,4}}{_SLASH}{{1,2}}){{2}}"),
    (PATH_TRAVERSAL, rf"(?:^|[=/\\?&]|%2f|%5c){_DOT}{{2}}(?:{_SLASH}|$)"),
    # -- local file inclusion ------------------------------------------------------------
    (LFI, r"\b(?:php|phar|zip|expect|glob|compress\.zlib|compress\.bzip2|ogg|rar)://"),
    (LFI, r"\bfile://"),
    (LFI, r"/etc/(?:passwd|shadow|group|hosts|issue|sudoers|crontab)\b"),
    (LFI, r"/proc/(?:self|\d{1,7})/(?:environ|cmdline|fd|maps|mem|status)\b"),
    (LFI, r"(?:\bc:|%systemroot%)\\+(?:windows|winnt)\\|\b(?:boot|win|system)\.ini\b"),
    (LFI, r"\.(?:php\d?|phtml|asp|aspx|jsp|ini|log|conf|txt|inc)(?:%00|\x00)"),
    # -- remote file inclusion -----------------------------------------------------------
    (
        RFI,
        r"=\s*(?:https?|ftps?|smb)://[^\s&?#]+\."
        r"(?:txt|php\d?|phtml|inc|sh|pl|py|jsp|aspx?|cgi)(?:\?|%00|%3f)",
    ),
    (RFI, r"\b(?:include|require)(?:_once)?\s*\(?\s*['\"]?\s*(?:https?|ftps?)://"),
    (RFI, r"=\s*\\\\[\w.-]{1,255}\\[\w$.-]{1,255}"),
    # -- server-side request forgery -----------------------------------------------------
    (SSRF, r"169\.254\.169\.254|\bfd00:ec2::254\b|\b100\.100\.100\.200\b"),
    (SSRF, r"\bmetadata\.google\.internal\b|\bmetadata\.azure\.com\b|/latest/meta-data\b"),
    (
        SSRF,
        rf"{_URL_HOST}(?:localhost|127\.\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}|0\.0\.0\.0|\[::1?\]"
        r"|\[::ffff:[\d.a-f:]{1,40}\]|0x[0-9a-f]{8}\b|0x7f|0177\.|\d{8,10}(?:[:/?#]|$))",
    ),
    (
        SSRF,
        rf"{_URL_HOST}(?:10\.\d{{1,3}}|192\.168|172\.(?:1[6-9]|2\d|3[01])|169\.254)"
        r"\.\d{1,3}",
    ),
    (SSRF, r"\b(?:gopher|dict|ldap|tftp)://"),
    # -- command injection ---------------------------------------------------------------
    (COMMAND_INJECTION, rf"{_SHELL_SEPARATOR}\s*(?:{_SHELL_TOOLS})\b"),
    (
        COMMAND_INJECTION,
        rf"{_SHELL_SEPARATOR}\s*(?:{_SHELL_WORDS})"
        r"(?:\s+(?:-{1,2}\w|[/~$'\"`<>\\]|\.{1,2}/)|\s*(?:$|[;|&`)<>]))",
    ),
    (COMMAND_INJECTION, rf"{_SHELL_SEPARATOR}\s*sleep\s+\d{{1,5}}\s*(?:$|[;|&`)#])"),
    (COMMAND_INJECTION, r"\$\{IFS\}|\$IFS\b|\bIFS\s*=\s*[,;]"),
    (COMMAND_INJECTION, r"(?:%0a|%0d)\s*(?:whoami|uname\s|id\s*$|cat\s+/|wget\s|curl\s)"),
    (COMMAND_INJECTION, r"\b(?:nc|ncat|netcat)\s+(?:-\w+\s+){0,5}-e\s|/dev/tcp/"),
    # -- server-side template and expression-language injection --------------------------
    (
        TEMPLATE_INJECTION,
        r"\{\{[^{}]*(?:\d\s*[*+/]\s*\d|__\w{1,30}__|\bconfig\b|\brequest\b|\bself\b"
        r"|\bcycler\b|\bjoiner\b|\blipsum\b|\|\s*attr\b|\bconstructor\b|\bprocess\b)"
        r"[^{}]*\}\}",
    ),
    (
        TEMPLATE_INJECTION,
        r"[$#@]\{[^{}]*(?:\d\s*[*+/]\s*\d|\bT\s*\(|getClass|\bRuntime\b|\.exec\b"
        r"|__\w{1,30}__|\bclass\b)[^{}]*\}",
    ),
    (TEMPLATE_INJECTION, r"\$\{[^{}]{0,100}?\bjndi\s*:"),
    (TEMPLATE_INJECTION, r"<%=?[^%]{0,500}?%>"),
    (TEMPLATE_INJECTION, r"<#(?:assign|import|include)\b|freemarker\.template\.utility\."),
    (TEMPLATE_INJECTION, r"#set\s*\(\s*\$\w|\.__(?:class|mro|subclasses|globals|builtins)__\b"),
)
