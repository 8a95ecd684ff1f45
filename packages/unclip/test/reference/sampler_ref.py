import numpy as np
T=1000
ab=lambda s: np.cos((s+0.008)/1.008*np.pi/2)**2
betas=np.array([min(1-ab((i+1)/T)/ab(i/T),0.999) for i in range(T)])
ac=np.cumprod(1-betas)
ts=lambda n: np.round(np.linspace(0,999,n)).astype(int)[::-1].tolist()
def ddpm(out,x,noise,t,s,pred,var,clip,C):
    at=ac[t]; as_=ac[s] if s>=0 else 1.0
    bt=1-at/as_; post=bt*(1-as_)/(1-at)
    n=len(x)//C; res=[]
    for b in range(n):
        o=out[b*(2*C if var=='learned_range' else C):]
        for j in range(C):
            xt=x[b*C+j]; p=o[j]
            x0=(xt-np.sqrt(1-at)*p)/np.sqrt(at) if pred=='epsilon' else p
            x0=np.clip(x0,-clip,clip)
            mu=np.sqrt(as_)*bt/(1-at)*x0+np.sqrt(1-bt)*(1-as_)/(1-at)*xt
            if s>=0:
                if var=='learned_range':
                    f=(o[C+j]+1)/2; ls=f*np.log(bt)+(1-f)*np.log(post)
                else: ls=np.log(max(post,1e-20))
                mu=mu+np.exp(0.5*ls)*noise[b*C+j]
            res.append(mu)
    return res
def ddim(out,x,t,s,pred,clip,C,stride):
    at=ac[t]; as_=ac[s] if s>=0 else 1.0
    res=[]
    for b in range(len(x)//C):
        for j in range(C):
            xt=x[b*C+j]; p=out[b*stride+j]
            if pred=='epsilon': e=p; x0=(xt-np.sqrt(1-at)*p)/np.sqrt(at)
            else: x0=p; e=(xt-np.sqrt(at)*p)/np.sqrt(1-at)
            x0=np.clip(x0,-clip,clip)
            res.append(np.sqrt(as_)*x0+np.sqrt(1-as_)*e)
    return res
f32=lambda a: np.array(a,dtype=np.float32).astype(np.float64)
t25=ts(25); t7=ts(7)
print('ac[999],ac[500],ac[0]', ac[999], ac[500], ac[0])
# case A: DDPM eps learned_range, C=2, 2 items, n=25 index 3
x=f32([0.5,-1.25,2.0,0.1]); out=f32([0.3,-0.7,0.9,-0.2, 1.5,0.2,-3.0,0.0]); nz=f32([0.25,-1.5,0.75,1.0])
print('A', t25[3], t25[4], repr(ddpm(out,x,nz,t25[3],t25[4],'epsilon','learned_range',1.0,2)))
# case B: DDPM sample fixed_small_log clip 10, C=3, 1 item, n=7 index 0
x=f32([1.0,-0.5,0.25]); out=f32([12.0,-0.75,0.5]); nz=f32([0.5,-0.25,2.0])
print('B', t7[0], t7[1], repr(ddpm(out,x,nz,t7[0],t7[1],'sample','fixed_small_log',10.0,3)))
# case C: DDPM last step eps learned_range no noise C=2
x=f32([0.5,-0.3]); out=f32([0.1,-0.2,0.5,0.5])
print('C', repr(ddpm(out,x,None,0,-1,'epsilon','learned_range',1.0,2)))
# case D: DDIM eps (learned_range output ignored v) n=7 index 2 C=2 one item
x=f32([0.8,-0.4]); out=f32([0.2,-0.6,0.9,-0.9])
print('D', t7[2], t7[3], repr(ddim(out,x,t7[2],t7[3],'epsilon',1.0,2,4)))
