"""Refusals in real model outputs, labelled by reading: AlpacaEval outputs
(alpaca_eval_results/MODEL, 0-based record index) and Anthropic HH answers (line numbers).
The refusal rules' test set (tests/test_signals.py), the concept's (tests/test_concepts.py)
and bench/quality.py's."""

REFUSALS = {
    "guanaco-7b": [3, 82, 122, 143, 147, 148, 161, 188, 207, 218, 228, 243, 291, 311, 336, 403, 408, 494, 547, 568,
                   574, 580, 587, 658, 664, 697, 701, 713],
    "falcon-7b-instruct": [10, 51, 56, 178, 207, 258, 285, 294, 296, 339, 352, 411, 430, 435, 532, 541, 691],
    "gpt4": [10, 128, 207, 254, 263, 266, 291, 294, 296, 326, 340, 352, 378, 379, 415, 458, 590, 606, 618, 720, 763],
    "llama-2-7b-chat-hf": [46, 62, 143, 178, 207, 220, 230, 246, 249, 250, 258, 260, 267, 291, 296, 327, 337, 340,
                           398, 426, 453],
    "vicuna-7b": [147, 294],
}
# Hard negatives: sympathy, "cannot" in an answer, apologies in role play, song lyrics,
# answers about language models, corrections that start "I'm sorry, but".
NOT_REFUSALS = {
    "guanaco-7b": [44, 127, 229, 280, 285, 302, 303, 307, 309, 422, 521, 626, 628, 629, 648, 799],
    "falcon-7b-instruct": [127, 132, 206, 303, 316, 357, 364, 412, 628, 629, 631, 676, 747, 780, 799],
    "gpt4": [127, 132, 142, 198, 292, 303, 364, 372, 455, 505, 524, 539, 629, 747, 799],
    "llama-2-7b-chat-hf": [53, 801],
    "vicuna-7b": [132, 285, 371, 423, 629, 799],
    "baize-v2-7b": [127, 132, 364, 442, 572, 628, 629],
    "text_davinci_003": [219],
}
# Held out: 80 random Anthropic HH "chosen" answers (line numbers), labelled by reading
# before the rules' last revision. First measured precision 1.00, recall 0.21; the rules then
# learned "I don't know how to", "not prepared to", "I'm not a lawyer" and "I don't have an
# opinion". Moralising questions ("Have you considered that your view is intolerant?") and
# other conversational refusals remain beyond phrase rules.
HH_REFUSALS = [197, 242, 286, 296, 399, 422, 507, 675, 914, 1017, 1227, 1263, 1406, 1838, 1856, 2027, 2033, 2257,
               2280]
HH_OTHERS = [153, 160, 190, 203, 237, 244, 253, 257, 299, 317, 335, 352, 371, 385, 482, 483, 545, 590, 617, 622, 736,
             740, 769, 843, 879, 905, 985, 999, 1179, 1186, 1229, 1285, 1286, 1326, 1393, 1401, 1434, 1481, 1497, 1525,
             1617, 1624, 1712, 1716, 1727, 1738, 1751, 1776, 1907, 2002, 2034, 2078, 2096, 2151, 2177, 2194, 2214, 2243,
             2285, 2294, 2311]
