"""Diagnostic training loop for the smoke recipe search (issue 5, "Speed and learning").

Standalone: env vars PRESET, PATCH, LR, WUP (warm-up steps), SCHED (cos|const), WD, P, K, BPE (batches per
epoch), EPOCHS, METRIC (adaptive|soft|hard|none), MARGIN, MFEAT (features|bn_features|norm), MW, MDELAY,
MWUP, TA, RE, PAD, GRAY, THREADS, SEED, EVAL, TRIALS, UNTRAINED=1, CONV=1 (conv stem), POOL, DPR (drop path),
DATA (SYSU-layout root), and after training BEFORE_BN=1 / FLIP=1 / TEN=1 (extra evaluations: pre-BN features,
flipped test images, 10 gallery trials). Prints train CE/acc and test IR->RGB all-search Rank-1/mAP
(reid.evaluate.evaluate_sysu) on the default synthetic set. results/README.md tabulates the runs of issue 5.

    PYTHONPATH=$PWD python benchmarks/smoke_recipe_sweep.py
"""
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from reid.data import (
    SYSUMM01,
    CrossModalIdentitySampler,
    CrossModalTrainSet,
    ImageCache,
    build_train_transform,
    carve_validation,
)
from reid.evaluate import evaluate_sysu
from reid.losses import AdaptiveTripletLoss, HardTripletLoss, LabelSmoothingCrossEntropy
from reid.models import ModelConfig, build_model

E = lambda k, d: os.environ.get(k, d)
SEED=int(E('SEED','0'))
torch.manual_seed(SEED); torch.set_num_threads(int(E("THREADS","2")))
ds=SYSUMM01(E('DATA', 'data/synthetic/SYSU-MM01'))
tr,vq,vg=carve_validation(ds.train, ds.ir_cameras, 0.15, 0)
H,W = int(E('H','96')), int(E('W','48'))
cache=ImageCache(H,W); cache.preload([p for p,_,_ in tr])
ta = E('TA','1')=='1'
ts=CrossModalTrainSet(tr, ds.ir_cameras, build_train_transform(H,W, trivial_augment=ta, random_erasing=float(E('RE','0.5')), pad=int(E('PAD','10'))), cache)
ncls=len({p for _,p,_ in tr})
model=build_model(ModelConfig(preset=E('PRESET','micro'), img_size=(H,W), patch_sizes=tuple(int(v) for v in E('PATCH','12,16').split(',')), drop_path_rate=float(E('DPR','0.0')), conv_stem=E('CONV','0')=='1', pooling=E('POOL','gap+cls')), ncls)
M=E('METRIC','adaptive'); margin=float(E('MARGIN','1.0'))
if M=='adaptive': metric=AdaptiveTripletLoss(margin=margin)
elif M=='soft': metric=AdaptiveTripletLoss(soft_margin=True)
elif M=='hard': metric=HardTripletLoss(margin=margin)
else: metric=None
MFEAT=E('MFEAT','features')
mw=float(E('MW','1.0')); MWUP=int(E('MWUP','0'))  # metric weight ramp steps (0 = none), delay
MDELAY=int(E('MDELAY','0'))
LR=float(E('LR','1e-3')); WUP=int(E('WUP','0'))
decay=[p for n,p in model.named_parameters() if p.ndim>1 and p.requires_grad]
nod=[p for n,p in model.named_parameters() if p.ndim<=1 and p.requires_grad]
opt=torch.optim.AdamW([{'params':decay,'weight_decay':float(E('WD','0.05'))},{'params':nod,'weight_decay':0.0}], lr=LR)
ce=LabelSmoothingCrossEntropy(0.1)
P,K=int(E('P','8')),int(E('K','2'))
BPE=int(E('BPE','0')) or None
EPOCHS=int(E('EPOCHS','10'))
samp=CrossModalIdentitySampler(tr, ds.ir_cameras, P,K,seed=SEED,batches_per_epoch=BPE)
total=EPOCHS*len(samp); SCHED=E('SCHED','cos')
print('steps/epoch',len(samp),'total',total, 'ncls', ncls, flush=True)
def lr_at(s):
    w = (s+1)/WUP if s < WUP else 1.0
    if SCHED=='cos': return LR*w*0.5*(1+math.cos(math.pi*s/total))
    return LR*w
gray=E('GRAY','1')=='1'
if E('UNTRAINED','0')=='1':
    r=evaluate_sysu(model.eval(), ds, mode='all', trials=int(E('TRIALS','3')))
    print(f"untrained R1 {r['rank1']:.1f} mAP {r['mAP']:.1f}"); sys.exit()
t=time.time(); step=0; steptime=0
EV=int(E('EVAL','5'))
for ep in range(EPOCHS):
    model.train(); samp.set_epoch(ep)
    dl=DataLoader(ts, batch_sampler=samp, num_workers=0)
    tot=0; mt=0; acc=0; n=0
    for b in dl:
        t0=time.time()
        for g in opt.param_groups: g['lr']=lr_at(step)
        if gray: x=torch.cat([b['img'],b['gray']]); y=torch.cat([b['pid'],b['pid']])
        else: x=b['img']; y=b['pid']
        out=model(x); l1=ce(out['logits'],y)
        if metric is not None:
            l2=metric(F.normalize(out['features'],dim=1) if MFEAT=='norm' else out[MFEAT],y)
            w = 0.0 if step<MDELAY else mw*min(1.0,(step-MDELAY+1)/MWUP) if MWUP else mw
        else: l2=torch.zeros(()); w=0
        loss=l1+w*l2
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0); opt.step()
        steptime+=time.time()-t0
        tot+=l1.item(); mt+=l2.item(); acc+=(out['logits'].argmax(1)==y).float().mean().item(); n+=1; step+=1
    msg=f"ep{ep} steps{step} ce {tot/n:.3f} met {mt/n:.3f} acc {100*acc/n:.1f} t {time.time()-t:.0f}s step {steptime/step:.3f}s"
    if ep%EV==EV-1 or ep==EPOCHS-1:
        r=evaluate_sysu(model.eval(), ds, mode='all', trials=int(E('TRIALS','3')))
        msg+=f" | test R1 {r['rank1']:.1f} mAP {r['mAP']:.1f}"
    print(msg, flush=True)
if E('BEFORE_BN','0')=='1':
    model.cfg.test_feature='before_bn'
    r=evaluate_sysu(model.eval(), ds, mode='all', trials=int(E('TRIALS','3')))
    print(f"before-BN features: test R1 {r['rank1']:.1f} mAP {r['mAP']:.1f}", flush=True)
    model.cfg.test_feature='after_bn'  # the evaluations below use the default embedding again
if E('FLIP','0')=='1':
    r=evaluate_sysu(model.eval(), ds, mode='all', trials=int(E('TRIALS','3')), flip=True)
    print(f"flip test: R1 {r['rank1']:.1f} mAP {r['mAP']:.1f}", flush=True)
if E('TEN','0')=='1':
    r=evaluate_sysu(model.eval(), ds, mode='all', trials=10)
    print(f"10 trials: R1 {r['rank1']:.1f} mAP {r['mAP']:.1f}", flush=True)
