"""A straightforward re-statement of DINM.md, written independently of the package's code.

One request at a time, one sequence per forward, no batching, no caching: what the contract says,
in the plainest PyTorch. The tests compare the package's edits with this one.
"""

import torch
import torch.nn.functional as F

CONSTRAINT = "general knowledge constraint"


def make_request(record, suffix=None):
    """An EasyEdit request dict from a SafeEdit record."""
    prompt = record["adversarial prompt"]
    kprompt = record["knowledge constrain"]["prompt"]
    if suffix:
        prompt, kprompt = prompt + " " + suffix, kprompt + " " + suffix
    return {
        "prompt": prompt,
        "target_new": record["safe generation"],
        "ground_truth": record["unsafe generation"],
        "portability": {},
        "locality": {CONSTRAINT: {"prompt": kprompt, "ground_truth": record["knowledge constrain"]["answer"]}},
    }


def ref_locate(model, tok, safe, unsafe):
    """Section 1: argmax_i ||H_i[safe] - H_i[unsafe]|| - 1 over right-padded [safe, unsafe]."""
    a, b = tok(safe).input_ids, tok(unsafe).input_ids
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    n = max(len(a), len(b))
    ids = torch.tensor([a + [pad] * (n - len(a)), b + [pad] * (n - len(b))])
    mask = torch.tensor([[1] * len(a) + [0] * (n - len(a)), [1] * len(b) + [0] * (n - len(b))])
    with torch.no_grad():
        hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    dists = [torch.dist(h[0].float(), h[1].float()).item() for h in hs[1:]]
    return dists.index(max(dists)), dists


def ref_sequence(tok, prompt, answer, max_length):
    """Section 3: prompt ids + answer ids, prompt cut from the left; returns ids and answer start."""
    p = tok(prompt).input_ids
    y = tok(" " + answer, add_special_tokens=False).input_ids
    if len(p) + len(y) > max_length:
        p = p[len(p) + len(y) - max_length:]
    return torch.tensor([p + y]), len(p)


def ref_answer_logits(model, ids, start):
    logits = model(input_ids=ids).logits[0].float()
    return logits[start - 1: ids.shape[1] - 1]


def ref_edit(model, tok, requests, layers_per_request, hp):
    """Sections 2-5 for `requests`; returns the list of losses. Edits `model` in place."""
    names = set()
    for layers in layers_per_request:
        for layer in layers:
            m = hp["rewrite_module_tmp"].format(layer)
            names |= {n for n, _ in model.named_parameters() if n == m or n.startswith(m + ".")}
    params = [p for n, p in model.named_parameters() if n in names]
    originals = [p.detach().clone() for p in params]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    model.eval()
    edit_seqs, cons_seqs, base = [], [], []
    for r in requests:
        edit_seqs.append(ref_sequence(tok, r["prompt"], r["target_new"], hp["max_length"]))
        c = r["locality"][CONSTRAINT]
        ids, start = ref_sequence(tok, c["prompt"], c["ground_truth"], hp["max_length"])
        cons_seqs.append((ids, start))
        with torch.no_grad():
            base.append(F.log_softmax(ref_answer_logits(model, ids, start), -1))
    opt = torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
    losses = []
    for _ in range(hp["num_steps"]):
        loss = 0.0
        for (ids, start), (cids, cstart), b in zip(edit_seqs, cons_seqs, base):
            logits = ref_answer_logits(model, ids, start)
            nll = F.cross_entropy(logits, ids[0, start:])
            with torch.set_grad_enabled(hp.get("constraint_grad", True)):
                clog = F.log_softmax(ref_answer_logits(model, cids, cstart), -1)
            kl = F.kl_div(clog, b, log_target=True, reduction="none").sum(-1).mean()
            loss = loss + hp["kl_factor"] * nll + kl
        losses.append(loss.item())
        if loss.item() < 1e-4:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        eps = hp.get("norm_constraint", False)
        if eps is not False:
            with torch.no_grad():
                for p, o in zip(params, originals):
                    p.copy_(torch.clamp(p, o - eps, o + eps))
    for p in model.parameters():
        p.requires_grad_(False)
    return losses
