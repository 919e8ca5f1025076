"""pi0 / pi0.5 vision-language-action policy (arXiv 2410.24164; openpi ``pi0.py``, ``pi0_pytorch.py``).

Notation: B batch, C cameras, H action_horizon, A action_dim (32), Lp prefix tokens (C * 256 image tokens + prompt
tokens), Ls suffix tokens (pi0: 1 state token + H action tokens; pi0.5: H action tokens), D width.

Token layout and attention (openpi ``make_attn_mask`` semantics: a token sees every valid token whose block
index is <= its own; a block starts where ``block_starts`` is 1):

* prefix = image tokens of each camera, then prompt tokens; one block, bidirectional. Tokens of cameras whose
  ``image_mask`` is False and padded prompt tokens are invisible to every query.
* pi0 suffix = [state token] [action tokens]: the state token starts block 2 (sees the prefix and itself), the
  action tokens start block 3 (see prefix, state and all action tokens). Nothing in the prefix sees the suffix.
* pi0.5 suffix = [action tokens], one block; the time enters through adaptive RMSNorm in the expert.

Positions for rotary embeddings are ``cumsum(valid) - 1`` over prefix then suffix, so invisible tokens do not
advance the position (openpi behaviour).

dtype policy: parameters are float32 by default; run under ``torch.autocast("cuda", dtype=torch.bfloat16)``
(or cast the model to bf16) for speed. RMSNorm, rotary tables, the sinusoidal time embedding and the loss are
computed in float32; sampled actions are returned as float32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from depi.constants import (
    ACTION_DIM_MASK,
    ACTION_IS_PAD,
    ACTIONS,
    CAMERA_SLOTS,
    IMAGE,
    IMAGE_MASK,
    STATE,
    TOKENIZED_PROMPT,
    TOKENIZED_PROMPT_MASK,
)
from depi.policies.pi0 import flow
from depi.policies.pi0.config import PI0Config, config_from_dict, config_to_dict
from depi.policies.pi0.flops import training_flops_per_sample
from depi.policies.pi0.gemma import GemmaStack, KVCache, attention_bias, decoder_layer, rotary_cos_sin
from depi.policies.pi0.lora import apply_freeze_filter
from depi.policies.pi0.siglip import SiglipVisionTower

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def make_attention_mask(valid: torch.Tensor, block_starts: torch.Tensor) -> torch.Tensor:
    """Boolean attention mask (True = query may attend key) from token validity and block starts.

    Args:
        valid: bool (B, L), False for padding / masked-camera tokens.
        block_starts: int or bool (L,) or (B, L), 1 where a new attention block starts (big_vision / openpi
            ``mask_ar``): query i sees key j iff block(j) <= block(i) and both are valid.
    Returns:
        bool (B, L, L). Invalid query rows see only themselves, so their (unused) outputs stay finite.
    """
    blocks = torch.cumsum(block_starts.to(torch.int64).expand_as(valid), dim=-1)  # (B, L)
    mask = (blocks[:, None, :] <= blocks[:, :, None]) & valid[:, None, :] & valid[:, :, None]
    eye = torch.eye(valid.shape[1], dtype=torch.bool, device=valid.device)
    return mask | (eye & ~valid[:, :, None])


def _visible_cameras(images: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> list[str]:
    """Camera slots to embed: those whose ``image_mask`` is True for some sample of the batch (all, under
    ``torch.compile``, where the check would break the graph; at least one slot).

    A slot masked out for the whole batch (a robot without a wrist camera: openpi and lerobot feed a black image
    and mask its tokens) adds only tokens no query attends to and no rotary position, so leaving it out changes
    no output beyond float rounding and saves its SigLIP pass and its share of the prefix attention
    (``benchmarks/bench_camera_slots.py``). The check reads each mask's values: on a GPU, eager, that is one
    host sync per step.
    """
    names = list(images)
    if torch.compiler.is_compiling():
        return names
    visible = [n for n in names if n not in masks or bool(masks[n].any())]
    return visible or names[:1]


def _pixels(image: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [0, 1] images (B, 3, H, W) -> float32 in [-1, 1] (SigLIP's input range)."""
    if image.dtype == torch.uint8:
        return image.float() / 127.5 - 1.0
    return image.float() * 2.0 - 1.0


class PI0Policy(nn.Module):
    """pi0 / pi0.5 policy: SigLIP + PaliGemma prefix, Gemma action expert, flow-matching head.

    Batch (keys from :mod:`depi.constants`): ``image`` dict slot -> uint8 (B, 3, S, S) or float in [0, 1];
    ``image_mask`` dict slot -> bool (B,); ``tokenized_prompt`` int64 (B, L); ``tokenized_prompt_mask`` bool
    (B, L); ``state`` float32 (B, state_dim) (pi0 only); ``actions`` float32 (B, H, A); ``action_dim_mask``
    bool (B, A); ``action_is_pad`` bool (B, H). Cameras are used in the dict's order.
    """

    def __init__(self, config: PI0Config):
        super().__init__()
        self.config = config
        width = config.expert.width
        self.vision_tower = SiglipVisionTower(config.vision)
        self.multi_modal_projector = nn.Linear(config.vision.width, config.vlm.width)
        self.language_model = GemmaStack(config.vlm, with_embedding=True)
        self.action_expert = GemmaStack(
            config.expert, with_embedding=False, cond_dim=width if config.is_pi05 else None
        )
        self.action_in_proj = nn.Linear(config.action_dim, width)
        self.action_out_proj = nn.Linear(width, config.action_dim)
        if config.is_pi05:
            self.time_mlp_in = nn.Linear(width, width)
            self.time_mlp_out = nn.Linear(width, width)
        else:
            self.state_proj = nn.Linear(config.state_dim, width)
            self.action_time_mlp_in = nn.Linear(2 * width, width)
            self.action_time_mlp_out = nn.Linear(width, width)
        self.vision_tower.gradient_checkpointing = config.gradient_checkpointing
        apply_freeze_filter(
            self,
            vlm_lora=config.vlm.lora_rank > 0,
            expert_lora=config.expert.lora_rank > 0,
            train_vision_tower=config.train_vision_tower,
            vlm_depth=config.vlm.depth,
        )

    # ------------------------------------------------------------------------------------------------ embeddings
    def embed_prefix(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and prompt tokens -> (embeddings (B, Lp, D_vlm), valid bool (B, Lp)); the prefix is one block."""
        images: dict[str, torch.Tensor] = batch[IMAGE]
        if not images:
            raise ValueError(f"batch[{IMAGE!r}] holds no camera; at least one image slot is required.")
        masks: dict[str, torch.Tensor] = batch.get(IMAGE_MASK, {})
        names = _visible_cameras(images, masks)
        b = images[names[0]].shape[0]
        pixels = torch.cat([_pixels(images[n]) for n in names], dim=0)  # (C*B, 3, S, S), one SigLIP call
        tokens = self.multi_modal_projector(self.vision_tower(pixels))  # (C*B, P, D)
        text = self.language_model.embed(batch[TOKENIZED_PROMPT])  # (B, L, D)
        per_cam = tokens.to(text.dtype).split(b, dim=0)
        valid = []
        for name, cam in zip(names, per_cam, strict=True):
            cam_mask = masks.get(name)
            cam_valid = (
                torch.ones(b, dtype=torch.bool, device=cam.device) if cam_mask is None else cam_mask.bool()
            )
            valid.append(cam_valid[:, None].expand(b, cam.shape[1]))
        valid.append(batch[TOKENIZED_PROMPT_MASK].bool())
        return torch.cat([*per_cam, text], dim=1), torch.cat(valid, dim=1)

    def _suffix_block_starts(self, horizon: int, device: torch.device) -> torch.Tensor:
        """Block starts int64 (Ls,) of the suffix: pi0 [1, 1, 0, ...] (state block, action block), pi0.5 [1, 0, ...]."""
        head = 1 if self.config.is_pi05 else 2
        starts = torch.zeros(horizon + head - 1, dtype=torch.int64, device=device)
        starts[:head] = 1
        return starts

    def embed_suffix(
        self, state: torch.Tensor | None, x_t: torch.Tensor, time: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Suffix tokens for the expert.

        Args:
            state: float (B, state_dim) (pi0) or None (pi0.5).
            x_t: noisy action chunk float (B, H, A); time: float32 (B,).
        Returns:
            (embeddings (B, Ls, D_expert), block_starts int64 (Ls,), adaRMS condition (B, D_expert) or None).
        """
        cfg = self.config
        act = self.action_in_proj(x_t.to(self.action_in_proj.weight.dtype))  # (B, H, D); bf16 params take bf16
        t_emb = flow.sinusoidal_time_embedding(time, cfg.expert.width, cfg.min_period, cfg.max_period).to(
            act.dtype
        )
        starts = self._suffix_block_starts(x_t.shape[1], x_t.device)
        if cfg.is_pi05:
            cond = F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(t_emb))))
            return act, starts, cond
        if state is None:
            raise ValueError(f"pi0 needs batch[{STATE!r}] (B, {cfg.state_dim}); got None.")
        state_tok = self.state_proj(state.to(act.dtype))[:, None]  # (B, 1, D)
        fused = torch.cat([act, t_emb[:, None].expand_as(act)], dim=-1)  # (B, H, 2D)
        act = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(fused)))
        return torch.cat([state_tok.to(act.dtype), act], dim=1), starts, None

    # ------------------------------------------------------------------------------------------------ transformer
    def _layers(
        self,
        streams: list[GemmaStack],
        hiddens: list[torch.Tensor],
        conds: list[torch.Tensor | None],
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        cache: KVCache | None = None,
        prefix_kv_only: bool = False,
    ) -> tuple[list[torch.Tensor | None], KVCache]:
        """Run all layers of ``streams`` jointly; returns final-normed hidden states per stream and the new KV.

        ``rope`` holds the rotary (cos, sin) tables of :meth:`_rope` for the tokens of this call.

        With ``prefix_kv_only`` the first stream (the language model on the prefix) computes only keys / values
        in its last layer, because nothing reads its outputs there (training and the prefix cache read the
        expert's outputs only); its returned hidden state is then None. Those parameters are frozen
        (:func:`depi.policies.pi0.lora.unused_language_model_prefixes`).
        """
        cos, sin = rope
        if mask.dtype == torch.bool:  # one additive bias for all layers
            mask = attention_bias(mask, hiddens[0].dtype)
        new_cache: KVCache = []
        checkpoint = self.config.gradient_checkpointing and self.training
        depth = self.config.vlm.depth
        for i in range(depth):
            layers = [s.layers[i] for s in streams]
            past = None if cache is None else cache[i]
            kv_only = [prefix_kv_only and i == depth - 1 and j == 0 for j in range(len(streams))]
            if checkpoint:
                hiddens, kv = torch.utils.checkpoint.checkpoint(
                    decoder_layer, layers, hiddens, conds, cos, sin, mask, past, kv_only, use_reentrant=False
                )
            else:
                hiddens, kv = decoder_layer(layers, hiddens, conds, cos, sin, mask, past, kv_only)
            new_cache.append(kv)
        outputs = [
            None if h is None else s.norm(h, c)[0] for s, h, c in zip(streams, hiddens, conds, strict=True)
        ]
        return outputs, new_cache

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary (cos, sin) tables (B, 1, L, E) float32 for integer positions (B, L)."""
        return rotary_cos_sin(positions, self.config.vlm.head_dim, self.config.vlm.rope_theta)

    def _velocity(self, out: torch.Tensor) -> torch.Tensor:
        return self.action_out_proj(out[:, -self.config.action_horizon :]).float()  # (B, H, A)

    def _full_velocity(self, batch: dict[str, Any], x_t: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """v(x_t, t) (B, H, A) float32 from one joint pass over prefix + suffix (training path, no cache)."""
        prefix, prefix_valid = self.embed_prefix(batch)
        suffix, suffix_starts, cond = self.embed_suffix(batch.get(STATE), x_t, time)
        b, ls = suffix.shape[:2]
        valid = torch.cat([prefix_valid, torch.ones(b, ls, dtype=torch.bool, device=suffix.device)], dim=1)
        starts = torch.cat(
            [torch.zeros(prefix.shape[1], dtype=torch.int64, device=suffix.device), suffix_starts]
        )
        mask = make_attention_mask(valid, starts)
        positions = torch.cumsum(valid.to(torch.int64), dim=1) - 1
        (_, out), _ = self._layers(
            [self.language_model, self.action_expert],
            [prefix, suffix],
            [None, cond],
            self._rope(positions),
            mask,
            prefix_kv_only=True,
        )
        return self._velocity(out)

    # ------------------------------------------------------------------------------------------------ public API
    def compute_loss(
        self, batch: dict[str, Any], noise: torch.Tensor | None = None, time: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Flow-matching loss of a batch (pi0 paper Sec. 3, Eq. 1; openpi ``compute_loss``).

        Args:
            batch: see the class docstring; ``actions`` (B, H, A) required.
            noise: float32 (B, H, A), default standard normal.
            time: float32 (B,), default Beta(1.5, 1) * 0.999 + 0.001.
        Returns:
            (scalar loss float32, {"loss": detached loss, "loss_per_dim": (A,) mean squared error per action dim,
            "per_sample_loss": (B,) each sample's loss with the same masking, see :func:`flow.per_sample_loss`}).
        Raises:
            ValueError: actions are not (B, action_horizon, action_dim).
        """
        cfg = self.config
        actions = batch[ACTIONS].float()
        if actions.ndim != 3 or tuple(actions.shape[1:]) != (cfg.action_horizon, cfg.action_dim):
            raise ValueError(
                f"batch[{ACTIONS!r}] has shape {tuple(actions.shape)}; expected (B, {cfg.action_horizon}, "
                f"{cfg.action_dim}) (action_horizon, action_dim padded to {cfg.action_dim})."
            )
        if noise is None:
            noise = torch.randn_like(actions)
        if time is None:
            time = flow.sample_time(
                actions.shape[0],
                alpha=cfg.time_beta_alpha,
                beta=cfg.time_beta_beta,
                scale=cfg.time_scale,
                offset=cfg.time_offset,
                device=actions.device,
            )
        x_t, target = flow.noisy_actions(actions, noise, time)
        velocity = self._full_velocity(batch, x_t, time)
        loss, err = flow.flow_matching_loss(
            velocity, target, batch.get(ACTION_DIM_MASK), batch.get(ACTION_IS_PAD), masked=cfg.mask_loss
        )
        per_sample = flow.per_sample_loss(
            err.detach(), batch.get(ACTION_DIM_MASK), batch.get(ACTION_IS_PAD), masked=cfg.mask_loss
        )
        return loss, {
            "loss": loss.detach(),
            "loss_per_dim": err.detach().mean(dim=(0, 1)),
            "per_sample_loss": per_sample,
        }

    def forward(
        self, batch: dict[str, Any], noise: torch.Tensor | None = None, time: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Same as :meth:`compute_loss`; training goes through ``forward`` so DDP / FSDP wrappers sync gradients."""
        return self.compute_loss(batch, noise=noise, time=time)

    def prefix_cache(self, batch: dict[str, Any]) -> tuple[KVCache, torch.Tensor]:
        """Run the prefix through the language model once: (per-layer keys/values (B, K, Lp, E), valid (B, Lp))."""
        prefix, valid = self.embed_prefix(batch)
        mask = make_attention_mask(
            valid, torch.zeros(prefix.shape[1], dtype=torch.int64, device=prefix.device)
        )
        positions = torch.cumsum(valid.to(torch.int64), dim=1) - 1
        rope = self._rope(positions)
        _, cache = self._layers([self.language_model], [prefix], [None], rope, mask, prefix_kv_only=True)
        return cache, valid

    def _suffix_attention(
        self, prefix_valid: torch.Tensor, horizon: int
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Rotary tables and attention bias of the suffix attending the cached prefix + itself, the same at every
        denoising step: ((cos, sin) (B, 1, Ls, E), additive bias (B, 1, Ls, Lp + Ls) in the expert's dtype). Only
        the suffix rows are built."""
        b, device = prefix_valid.shape[0], prefix_valid.device
        starts = self._suffix_block_starts(horizon, device)
        ls = starts.shape[0]
        suffix_valid = torch.ones(b, ls, dtype=torch.bool, device=device)
        mask = torch.cat(
            [prefix_valid[:, None, :].expand(b, ls, -1), make_attention_mask(suffix_valid, starts)], dim=2
        )
        positions = prefix_valid.sum(dim=1, keepdim=True) + torch.arange(ls, device=device)[None]
        return self._rope(positions), attention_bias(mask, self.action_in_proj.weight.dtype)

    def _cached_velocity(
        self,
        cache: KVCache,
        attention: tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor],
        state: torch.Tensor | None,
        x_t: torch.Tensor,
        time: torch.Tensor,
    ) -> torch.Tensor:
        """v(x_t, t) (B, H, A) float32 from the expert alone, attending the cached prefix keys / values."""
        suffix, _, cond = self.embed_suffix(state, x_t, time)
        rope, mask = attention
        (out,), _ = self._layers([self.action_expert], [suffix], [cond], rope, mask, cache)
        return self._velocity(out)

    @torch.no_grad()
    def sample_actions(
        self,
        batch: dict[str, Any],
        noise: torch.Tensor | None = None,
        num_steps: int | None = None,
        use_kv_cache: bool = True,
    ) -> torch.Tensor:
        """Sample an action chunk by Euler integration of the learned velocity from t = 1 to 0.

        With ``use_kv_cache`` the prefix keys/values are computed once and reused at every denoising step
        (openpi ``sample_actions``); without it every step runs the full prefix + suffix pass (same result, slower).

        Args:
            batch: see the class docstring (``actions`` not needed).
            noise: float32 (B, H, A), default standard normal.
            num_steps: denoising steps, default ``config.num_steps``.
        Returns:
            float32 (B, H, A) actions in the normalized, padded space of the training data.
        """
        cfg = self.config
        b = batch[TOKENIZED_PROMPT].shape[0]
        device = batch[TOKENIZED_PROMPT].device
        if noise is None:
            noise = torch.randn(b, cfg.action_horizon, cfg.action_dim, device=device)
        steps = cfg.num_steps if num_steps is None else num_steps
        if not use_kv_cache:
            return flow.euler_sample(lambda x, t: self._full_velocity(batch, x, t), noise.float(), steps)
        cache, valid = self.prefix_cache(batch)
        state = batch.get(STATE)
        attention = self._suffix_attention(valid, noise.shape[1])
        return flow.euler_sample(
            lambda x, t: self._cached_velocity(cache, attention, state, x, t), noise.float(), steps
        )

    def flops_per_sample(self, num_cameras: int = len(CAMERA_SLOTS), prompt_len: int | None = None) -> float:
        """Training (forward + backward) matmul FLOPs of one sample, for MFU (formula: :mod:`depi.policies.pi0.flops`).

        Args:
            num_cameras: camera slots per sample (default: the three pi0 slots, all run through SigLIP even when
                masked).
            prompt_len: prompt tokens (default: ``config.max_token_len``, the length the transforms pad to).
        """
        length = self.config.max_token_len if prompt_len is None else prompt_len
        return float(training_flops_per_sample(self.config, num_cameras, length))

    @torch.no_grad()
    def language_logits(self, batch: dict[str, Any]) -> torch.Tensor:
        """PaliGemma next-token logits over the prefix (tied embedding head), float32 (B, Lp, vocab_size).

        The prefix is bidirectional as in PaliGemma's prefix-LM with every token in the prefix.
        """
        prefix, valid = self.embed_prefix(batch)
        mask = make_attention_mask(
            valid, torch.zeros(prefix.shape[1], dtype=torch.int64, device=prefix.device)
        )
        positions = torch.cumsum(valid.to(torch.int64), dim=1) - 1
        (hidden,), _ = self._layers([self.language_model], [prefix], [None], self._rope(positions), mask)
        return F.linear(hidden, self.language_model.embed_tokens.weight).float()

    # ------------------------------------------------------------------------------------------------ persistence
    def save_pretrained(
        self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``directory``; returns it.

        Args:
            directory: created if missing.
            state_dict: the tensors to write instead of this module's own, e.g. the full state dict that
                ``accelerator.get_state_dict(model)`` gathers from FSDP shards on the main process (keys as in
                this module's ``state_dict``). Default: ``self.state_dict()``.
        Raises:
            ValueError: ``state_dict`` keys or shapes differ from this module's (the message lists them); nothing
                is written then.
        """
        own = self.state_dict()
        if state_dict is None:
            state_dict = own
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"save_pretrained({directory}): the given state_dict does not match {type(self).__name__}: "
                f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}). Pass "
                "the keys of policy.state_dict() (strip wrapper prefixes such as 'policy.' or '_orig_mod.')."
            )
        wrong = [k for k in own if tuple(state_dict[k].shape) != tuple(own[k].shape)]
        if wrong:
            k = wrong[0]
            raise ValueError(
                f"save_pretrained({directory}): state_dict[{k!r}] has shape {tuple(state_dict[k].shape)}, expected "
                f"{tuple(own[k].shape)} ({len(wrong)} tensors differ); a sharded (FSDP) state dict must be gathered "
                "first with accelerator.get_state_dict(model)."
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: state_dict[k].detach().cpu().contiguous() for k in own}
        save_file(
            tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "depi_policy": self.config.type}
        )
        (directory / CONFIG_NAME).write_text(json.dumps(config_to_dict(self.config), indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, strict: bool = True) -> PI0Policy:
        """Build from ``config.json`` and load ``model.safetensors`` written by :meth:`save_pretrained`.

        Raises:
            FileNotFoundError: a file is missing; ValueError: the config is invalid;
            depi.policies.pi0.weights.WeightLoadError: with ``strict``, keys do not match.
        """
        from depi.policies.pi0.weights import load_weights

        directory = Path(directory)
        path = directory / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found; a depi policy directory holds {CONFIG_NAME} + {WEIGHTS_NAME}."
            )
        policy = cls(config_from_dict(json.loads(path.read_text()), source=str(path)))
        load_weights(policy, directory, layout="depi", strict=strict)
        return policy
