"use strict";(self.rspackChunkcredd_jupyterlab=self.rspackChunkcredd_jupyterlab||[]).push([[232],{475(e,r,t){var o=t(601),n=t.n(o),a=t(314),c=(t.n(a))()(n());c.push([e.id,`/* credd's status-bar item and dialogs. Colours come from JupyterLab's theme variables. */

.credd-status {
  cursor: pointer;
  padding: 0 6px;
  border-radius: 2px;
}

.credd-status:hover {
  background-color: var(--jp-layout-color2);
}

.credd-status.credd-level-person {
  background-color: var(--jp-error-color1);
  color: var(--jp-ui-inverse-font-color1);
  font-weight: 600;
}

.credd-status.credd-level-person .credd-status-text {
  color: var(--jp-ui-inverse-font-color1);
}

.credd-status.credd-level-warn .credd-status-text {
  color: var(--jp-warn-color1);
}

.credd-status.credd-level-off .credd-status-text {
  color: var(--jp-ui-font-color2);
  font-style: italic;
}

.credd-dialog {
  min-width: 360px;
  max-width: 560px;
}

.credd-user-code {
  font-family: var(--jp-code-font-family);
  font-size: 24px;
  letter-spacing: 0.15em;
  margin: 12px 0;
  text-align: center;
}

.credd-verification-link {
  display: block;
  word-break: break-all;
  color: var(--jp-content-link-color);
  text-decoration: underline;
}

.credd-login-state {
  margin-top: 12px;
  color: var(--jp-ui-font-color2);
}

.credd-failed,
.credd-failed .credd-login-state {
  color: var(--jp-error-color1);
}

.credd-mfa-input {
  display: block;
  margin-top: 8px;
  font-family: var(--jp-code-font-family);
  font-size: 18px;
  letter-spacing: 0.2em;
  width: 10em;
}

.credd-profiles {
  padding-left: 1.2em;
  margin: 0;
}

.credd-profile {
  margin: 4px 0;
}

.credd-profile .credd-act {
  margin-left: 8px;
}
`,""]),t.d(r,{},{A:c})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var t="",o=void 0!==r[5];return r[4]&&(t+="@supports (".concat(r[4],") {")),r[2]&&(t+="@media ".concat(r[2]," {")),o&&(t+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),t+=e(r),o&&(t+="}"),r[2]&&(t+="}"),r[4]&&(t+="}"),t}).join("")},r.i=function(e,t,o,n,a){"string"==typeof e&&(e=[[null,e,void 0]]);var c={};if(o)for(var i=0;i<this.length;i++){var s=this[i][0];null!=s&&(c[s]=!0)}for(var d=0;d<e.length;d++){var l=[].concat(e[d]);o&&c[l[0]]||(void 0!==a&&(void 0===l[5]||(l[1]="@layer".concat(l[5].length>0?" ".concat(l[5]):""," {").concat(l[1],"}")),l[5]=a),t&&(l[2]&&(l[1]="@media ".concat(l[2]," {").concat(l[1],"}")),l[2]=t),n&&(l[4]?(l[1]="@supports (".concat(l[4],") {").concat(l[1],"}"),l[4]=n):l[4]="".concat(n)),r.push(l))}},r}},601(e){e.exports=function(e){return e[1]}},72(e){var r=[];function t(e){for(var t=-1,o=0;o<r.length;o++)if(r[o].identifier===e){t=o;break}return t}function o(e,o){for(var n={},a=[],c=0;c<e.length;c++){var i=e[c],s=o.base?i[0]+o.base:i[0],d=n[s]||0,l="".concat(s," ").concat(d);n[s]=d+1;var u=t(l),p={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==u)r[u].references++,r[u].updater(p);else{var f=function(e,r){var t=r.domAPI(r);return t.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&t.update(e=r):t.remove()}}(p,o);o.byIndex=c,r.splice(c,0,{identifier:l,updater:f,references:1})}a.push(l)}return a}e.exports=function(e,n){var a=o(e=e||[],n=n||{});return function(e){e=e||[];for(var c=0;c<a.length;c++){var i=t(a[c]);r[i].references--}for(var s=o(e,n),d=0;d<a.length;d++){var l=t(a[d]);0===r[l].references&&(r[l].updater(),r.splice(l,1))}a=s}}},659(e){var r={};e.exports=function(e,t){var o=function(e){if(void 0===r[e]){var t=document.querySelector(e);if(window.HTMLIFrameElement&&t instanceof window.HTMLIFrameElement)try{t=t.contentDocument.head}catch(e){t=null}r[e]=t}return r[e]}(e);if(!o)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");o.appendChild(t)}},159(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,t){e.exports=function(e){var r=t.nc;r&&e.setAttribute("nonce",r)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(t){var o,n,a;o="",t.supports&&(o+="@supports (".concat(t.supports,") {")),t.media&&(o+="@media ".concat(t.media," {")),(n=void 0!==t.layer)&&(o+="@layer".concat(t.layer.length>0?" ".concat(t.layer):""," {")),o+=t.css,n&&(o+="}"),t.media&&(o+="}"),t.supports&&(o+="}"),(a=t.sourceMap)&&"u">typeof btoa&&(o+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),e.styleTagTransform(o,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}},579(e,r,t){var o=t(72),n=t.n(o),a=t(825),c=t.n(a),i=t(659),s=t.n(i),d=t(56),l=t.n(d),u=t(159),p=t.n(u),f=t(113),v=t.n(f),m=t(475),h={};h.styleTagTransform=v(),h.setAttributes=l(),h.insert=s().bind(null,"head"),h.domAPI=c(),h.insertStyleElement=p(),n()(m.A,h),m.A&&m.A.locals&&m.A.locals}}]);